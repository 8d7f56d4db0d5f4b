//! Commands inside nodes: captured ([`Docker::exec`]) and interactive with a TTY
//! ([`Docker::exec_interactive`]).

use super::{Docker, Error, docker_err, status};
use crate::names;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// What a captured command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    /// stdout then stderr, for messages.
    pub fn combined(&self) -> String {
        match (self.stdout.trim_end(), self.stderr.trim_end()) {
            (o, "") => o.to_string(),
            ("", e) => e.to_string(),
            (o, e) => format!("{o}\n{e}"),
        }
    }
}

/// How long the engine may take to report an exec's exit code once its output has ended.
const EXIT_CODE_DEADLINE: Duration = Duration::from_secs(10);

impl Docker {
    fn exec_error(&self, lab: &str, node: &str, e: bollard::errors::Error) -> Error {
        match status(&e) {
            Some(404) => Error::NodeNotFound {
                lab: lab.to_string(),
                node: node.to_string(),
            },
            Some(409) => Error::NodeNotRunning {
                lab: lab.to_string(),
                node: node.to_string(),
            },
            _ => docker_err(format!("exec in {}", names::container(lab, node)))(e),
        }
    }

    /// Runs `argv` in a node and captures its output and exit code.
    pub async fn exec(&self, lab: &str, node: &str, argv: &[String]) -> Result<ExecOutput, Error> {
        let container = names::container(lab, node);
        let created = self
            .client
            .create_exec(
                &container,
                CreateExecOptions {
                    cmd: Some(argv.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.exec_error(lab, node, e))?;
        let started = self
            .client
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| self.exec_error(lab, node, e))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(docker_err(format!("reading output in {container}")))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message)
                    }
                    other => stdout.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let exit_code = self.exit_code(&created.id, &container).await?;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// The exit code of a finished exec. The engine may still report it running for a moment
    /// after its output stream ended (its bookkeeping is asynchronous): poll with a deadline.
    async fn exit_code(&self, exec_id: &str, container: &str) -> Result<i64, Error> {
        let deadline = Instant::now() + EXIT_CODE_DEADLINE;
        let mut pause = Duration::from_millis(2);
        loop {
            let info = self
                .client
                .inspect_exec(exec_id)
                .await
                .map_err(docker_err(format!("inspecting exec in {container}")))?;
            if info.running != Some(true) {
                return Ok(info.exit_code.unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return Err(Error::Io {
                    context: format!("exec in {container}"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the engine still reports the command running after its output ended",
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Runs `argv` in a node with a TTY, wired to `stdin`/`stdout` (the caller owns raw mode),
    /// applying every `(cols, rows)` from `resize` (send the initial size first). Returns the
    /// exit code when the command ends. If `stdin` reaches EOF the command's input is closed.
    ///
    /// The TTY stream is read raw (a hijacked connection on the engine's socket), not through
    /// bollard's decoder, which takes output starting with a byte 0..=2 for a multiplexing
    /// header and can stall on binary output.
    pub async fn exec_interactive<I, O, R>(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        mut stdin: I,
        mut stdout: O,
        resize: R,
    ) -> Result<i64, Error>
    where
        I: AsyncRead + Unpin + Send + 'static,
        O: AsyncWrite + Unpin,
        R: Stream<Item = (u16, u16)> + Unpin,
    {
        let container = names::container(lab, node);
        let io_err = |context: &str| {
            let context = format!("{context} ({container})");
            move |source| Error::Io { context, source }
        };
        let created = self
            .client
            .create_exec(
                &container,
                CreateExecOptions {
                    cmd: Some(argv.to_vec()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    env: Some(vec![
                        "TERM=xterm-256color".to_string(),
                        "LANG=C.UTF-8".to_string(),
                    ]),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.exec_error(lab, node, e))?;
        let stream = self
            .hijack(&created.id)
            .await
            .map_err(io_err("attaching a terminal"))?;
        let (mut rd, mut wr) = stream.into_split();
        let input = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdin, &mut wr).await;
            let _ = wr.shutdown().await;
        });
        let mut resize = resize.fuse();
        let mut buf = vec![0u8; 16 * 1024];
        let result = loop {
            tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        if let Err(e) = async {
                            stdout.write_all(&buf[..n]).await?;
                            stdout.flush().await
                        }.await {
                            break Err(io_err("writing terminal output")(e));
                        }
                    }
                    Err(e) => break Err(io_err("reading terminal output")(e)),
                },
                Some((cols, rows)) = resize.next() => {
                    let size = ResizeExecOptions { width: cols, height: rows };
                    if let Err(e) = self.client.resize_exec(&created.id, size).await {
                        tracing::debug!("resizing the terminal of {container}: {e}");
                    }
                }
            }
        };
        input.abort();
        result?;
        self.exit_code(&created.id, &container).await
    }

    /// `POST /exec/{id}/start` with `Tty: true` on a raw connection to the engine's socket;
    /// after the `101 UPGRADED` head the connection carries the terminal both ways.
    async fn hijack(&self, exec_id: &str) -> std::io::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.socket).await?;
        let body = r#"{"Detach":false,"Tty":true}"#;
        let request = format!(
            "POST /v{}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n\
             Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.api_version(),
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        // Byte by byte up to the blank line, so no terminal output is swallowed by a buffer.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(std::io::Error::other(
                    "oversized response head from the engine",
                ));
            }
            let mut byte = [0u8];
            if stream.read(&mut byte).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the engine closed the connection",
                ));
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let code = head.split_whitespace().nth(1).unwrap_or_default();
        if code == "101" || code == "200" {
            return Ok(stream);
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
        Err(std::io::Error::other(format!(
            "the engine answered {}: {}",
            head.lines().next().unwrap_or_default(),
            String::from_utf8_lossy(&rest).trim()
        )))
    }
}
