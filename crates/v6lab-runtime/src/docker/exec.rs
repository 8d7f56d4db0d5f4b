//! Commands inside nodes: captured and bounded ([`Docker::exec`]) and interactive with a TTY
//! ([`Docker::exec_interactive`]).

use super::{Docker, Error, ExecLimits, ExecOutput, docker_err, kill, status};
use crate::names;
use crate::runtime::{Pipes, Streamed};
use bollard::exec::{CreateExecOptions, ResizeExecOptions};
use futures::{Stream, StreamExt};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// "64 KiB", "1 MiB", "100 bytes".
pub(crate) fn show_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// "10s", "1.5s".
pub(crate) fn show_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Cuts the engine's multiplexed stream (8-byte headers: stream, 0, 0, 0, length u32 BE) into
/// payload pieces. Pure: fed with whatever the connection gives, in any pieces; allocates
/// nothing, whatever length a header announces.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 8],
    header_len: usize,
    /// Payload bytes left in the current frame, and its stream (2 = stderr).
    left: usize,
    stream: u8,
}

impl Frames {
    /// The next payload piece at the start of `bytes` (taken from it) and its stream; `None`
    /// once `bytes` is used up.
    fn next<'b>(&mut self, bytes: &mut &'b [u8]) -> Option<(u8, &'b [u8])> {
        while !bytes.is_empty() {
            if self.left == 0 {
                let n = (8 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                *bytes = &bytes[n..];
                if self.header_len == 8 {
                    self.header_len = 0;
                    self.stream = self.header[0];
                    let len = u32::from_be_bytes([
                        self.header[4],
                        self.header[5],
                        self.header[6],
                        self.header[7],
                    ]);
                    self.left = len as usize;
                }
                continue;
            }
            let n = self.left.min(bytes.len());
            let (piece, rest) = bytes.split_at(n);
            *bytes = rest;
            self.left -= n;
            return Some((self.stream, piece));
        }
        None
    }
}

/// Splits the engine's multiplexed stream into stdout and stderr, keeping at most `cap` bytes
/// in all.
#[derive(Debug)]
struct Demux {
    cap: usize,
    frames: Frames,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: bool,
}

impl Demux {
    fn new(cap: usize) -> Self {
        Demux {
            cap,
            frames: Frames::default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
        }
    }

    fn kept(&self) -> usize {
        self.stdout.len() + self.stderr.len()
    }

    /// Takes more bytes; false once the output went beyond the cap (stop reading).
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while let Some((stream, piece)) = self.frames.next(&mut bytes) {
            let keep = piece.len().min(self.cap - self.kept());
            let sink = if stream == 2 {
                &mut self.stderr
            } else {
                &mut self.stdout
            };
            sink.extend_from_slice(&piece[..keep]);
            if keep < piece.len() {
                self.truncated = true;
                return false;
            }
        }
        true
    }
}

/// Kills an exec's processes if its caller drops it before it ended (a cancelled lab
/// creation, an abandoned check): the command must not outlive its caller.
struct StopOnDrop {
    docker: Docker,
    exec_id: String,
    mark: String,
    armed: bool,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (docker, id, mark) = (
                self.docker.clone(),
                std::mem::take(&mut self.exec_id),
                std::mem::take(&mut self.mark),
            );
            rt.spawn(async move { docker.stop_exec(&id, &mark).await });
        }
    }
}

/// An IO error while `context` ("reading a command's output"), naming the container.
fn io_error(container: &str, context: &str) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let context = format!("{context} ({container})");
    move |source| Error::Io { context, source }
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

    /// Runs `argv` in a node and captures its output and exit code, within `limits`: output
    /// beyond the cap is not read and stops the command; at the deadline the command is
    /// killed. Either way the command's processes are killed from the host
    /// ([`kill::kill_tree`]) and the output says why. Memory stays bounded whatever the
    /// command writes. Dropping the future stops the command too.
    pub async fn exec(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        limits: ExecLimits,
    ) -> Result<ExecOutput, Error> {
        let deadline = tokio::time::Instant::now() + limits.deadline;
        let container = names::container(lab, node);
        let late = || ExecOutput {
            exit_code: -1,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            timed_out: true,
            stopped: Some(format!(
                "the command did not finish within {}; it was stopped",
                show_secs(limits.deadline)
            )),
        };
        let mark = kill::new_mark();
        let create = self.client.create_exec(
            &container,
            CreateExecOptions {
                cmd: Some(argv.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                env: Some(vec![format!("{}={mark}", kill::MARK_VAR)]),
                ..Default::default()
            },
        );
        let created = match tokio::time::timeout_at(deadline, create).await {
            Ok(c) => c.map_err(|e| self.exec_error(lab, node, e))?,
            Err(_) => return Ok(late()),
        };
        let mut guard = StopOnDrop {
            docker: self.clone(),
            exec_id: created.id.clone(),
            mark,
            armed: true,
        };
        let io_err = |context: &str| io_error(&container, context);
        let mut demux = Demux::new(limits.output_cap);
        let mut timed_out = false;
        match tokio::time::timeout_at(deadline, self.hijack(&created.id, false)).await {
            Err(_) => timed_out = true,
            Ok(stream) => {
                let mut stream = stream.map_err(io_err("starting a command"))?;
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                        Err(_) => {
                            timed_out = true;
                            break;
                        }
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => {
                            if !demux.feed(&buf[..n]) {
                                break;
                            }
                        }
                        Ok(Err(e)) => return Err(io_err("reading a command's output")(e)),
                    }
                }
            }
        }
        let mut exit_code = -1;
        if !timed_out && !demux.truncated {
            let until = deadline.min(tokio::time::Instant::now() + EXIT_CODE_DEADLINE);
            match tokio::time::timeout_at(until, self.exit_code(&created.id, &container)).await {
                Ok(code) => exit_code = code?,
                Err(_) => timed_out = true,
            }
        }
        let stopped = if demux.truncated {
            Some(format!(
                "output truncated at {}; the command was stopped",
                show_bytes(limits.output_cap)
            ))
        } else if timed_out {
            late().stopped
        } else {
            None
        };
        if stopped.is_some() {
            // Still armed: a caller dropping this future now does not cut the stop short.
            self.stop_exec(&created.id, &guard.mark).await;
        }
        guard.armed = false;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&demux.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&demux.stderr).into_owned(),
            truncated: demux.truncated,
            timed_out: timed_out && !demux.truncated,
            stopped,
        })
    }

    /// Kills an exec's processes from the host: its own (by the host PID the engine reports,
    /// while it runs) and those of the node carrying its mark, with their descendants.
    async fn stop_exec(&self, exec_id: &str, mark: &str) {
        let info = match self.client.inspect_exec(exec_id).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(exec_id, error = %e, "cannot inspect a command to stop it");
                return;
            }
        };
        let Some(container_id) = info.container_id else {
            return;
        };
        let roots: Vec<u32> = match (info.running, info.pid) {
            (Some(true), Some(pid)) if pid > 0 => vec![pid as u32],
            _ => Vec::new(),
        };
        let mark = mark.to_owned();
        let killed =
            tokio::task::spawn_blocking(move || kill::kill_tree(&container_id, &roots, &mark))
                .await
                .unwrap_or_default();
        tracing::debug!(exec_id, killed = killed.len(), "stopped a command");
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

    /// Creates an exec of `argv` in a node with stdin, stdout and stderr attached; its ID.
    async fn create_attached(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        tty: bool,
        env: Vec<String>,
    ) -> Result<String, Error> {
        self.client
            .create_exec(
                &names::container(lab, node),
                CreateExecOptions {
                    cmd: Some(argv.to_vec()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    env: Some(env),
                    ..Default::default()
                },
            )
            .await
            .map(|created| created.id)
            .map_err(|e| self.exec_error(lab, node, e))
    }

    /// Runs `argv` in a node without a TTY, its stdin fed from `pipes.stdin` (EOF closes it)
    /// and its stdout and stderr written to theirs as they come: the output is read no faster
    /// than it is written (back-pressure), so memory stays bounded whatever the command
    /// prints. At `deadline` the command's processes are killed from the host
    /// ([`kill::kill_tree`]); dropping the future kills them too.
    pub async fn exec_streamed(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
        pipes: Pipes<'_>,
        deadline: Option<Duration>,
    ) -> Result<Streamed, Error> {
        let Pipes {
            mut stdin,
            stdout,
            stderr,
        } = pipes;
        let container = names::container(lab, node);
        let io_err = |context: &str| io_error(&container, context);
        let mark = kill::new_mark();
        let env = vec![format!("{}={mark}", kill::MARK_VAR)];
        let exec_id = self.create_attached(lab, node, argv, false, env).await?;
        let mut guard = StopOnDrop {
            docker: self.clone(),
            exec_id: exec_id.clone(),
            mark,
            armed: true,
        };
        let work = async {
            let stream = self
                .hijack(&exec_id, false)
                .await
                .map_err(io_err("starting a command"))?;
            let (mut rd, mut wr) = stream.into_split();
            let input = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stdin, &mut wr).await;
                // Half-close: the command reads EOF, its output still comes.
                let _ = wr.shutdown().await;
                // The write half lives on until the output ends (dropping it may close both).
                std::future::pending::<()>().await;
            });
            struct Abort(tokio::task::JoinHandle<()>);
            impl Drop for Abort {
                fn drop(&mut self) {
                    self.0.abort();
                }
            }
            let _input = Abort(input);
            let mut frames = Frames::default();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = rd
                    .read(&mut buf)
                    .await
                    .map_err(io_err("reading a command's output"))?;
                if n == 0 {
                    break;
                }
                let mut bytes = &buf[..n];
                while let Some((stream, piece)) = frames.next(&mut bytes) {
                    let sink = if stream == 2 {
                        &mut *stderr
                    } else {
                        &mut *stdout
                    };
                    sink.write_all(piece)
                        .await
                        .map_err(io_err("writing a command's output"))?;
                }
                stdout
                    .flush()
                    .await
                    .map_err(io_err("writing a command's output"))?;
                stderr
                    .flush()
                    .await
                    .map_err(io_err("writing a command's output"))?;
            }
            self.exit_code(&exec_id, &container).await
        };
        let ended = match deadline {
            None => Some(work.await),
            Some(d) => tokio::time::timeout(d, work).await.ok(),
        };
        match ended {
            Some(Ok(code)) => {
                guard.armed = false;
                Ok(Streamed::Exited(code))
            }
            // The guard stops what is left of the command.
            Some(Err(e)) => Err(e),
            None => {
                self.stop_exec(&exec_id, &guard.mark).await;
                guard.armed = false;
                Ok(Streamed::DeadlinePassed)
            }
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
        let io_err = |context: &str| io_error(&container, context);
        let env = vec!["TERM=xterm-256color".into(), "LANG=C.UTF-8".into()];
        let exec_id = self.create_attached(lab, node, argv, true, env).await?;
        let stream = self
            .hijack(&exec_id, true)
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
                    if let Err(e) = self.client.resize_exec(&exec_id, size).await {
                        tracing::debug!("resizing the terminal of {container}: {e}");
                    }
                }
            }
        };
        input.abort();
        result?;
        self.exit_code(&exec_id, &container).await
    }

    /// `POST /exec/{id}/start` on a raw connection to the engine's socket; after the
    /// `101 UPGRADED` head the connection carries the terminal both ways (`tty`), or the
    /// command's multiplexed stdout and stderr ([`Demux`]).
    async fn hijack(&self, exec_id: &str, tty: bool) -> std::io::Result<UnixStream> {
        let mut stream = UnixStream::connect(&self.socket).await?;
        let body = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::DEFAULT_OUTPUT_CAP;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn demux_splits_streams_fed_in_any_pieces() {
        let mut wire = frame(1, b"out1 ");
        wire.extend(frame(2, b"err"));
        wire.extend(frame(1, b"out2"));
        for piece in [1, 3, 7, wire.len()] {
            let mut d = Demux::new(1024);
            for chunk in wire.chunks(piece) {
                assert!(d.feed(chunk));
            }
            assert_eq!(d.stdout, b"out1 out2");
            assert_eq!(d.stderr, b"err");
            assert!(!d.truncated);
        }
    }

    #[test]
    fn frames_give_payload_pieces_as_they_come() {
        let mut wire = frame(1, b"out");
        wire.extend(frame(2, b"err"));
        wire.extend(frame(1, b""));
        for piece in [1, 2, 5, wire.len()] {
            let mut frames = Frames::default();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            for mut chunk in wire.chunks(piece) {
                while let Some((stream, p)) = frames.next(&mut chunk) {
                    assert!(!p.is_empty());
                    if stream == 2 { &mut err } else { &mut out }.extend_from_slice(p);
                }
                assert!(chunk.is_empty());
            }
            assert_eq!((out.as_slice(), err.as_slice()), (&b"out"[..], &b"err"[..]));
        }
    }

    #[test]
    fn demux_keeps_the_cap_and_stops_beyond_it() {
        // Exactly the cap is not truncated.
        let mut d = Demux::new(8);
        assert!(d.feed(&frame(1, b"12345678")));
        assert!(!d.truncated);
        // One byte more is.
        let mut d = Demux::new(8);
        assert!(d.feed(&frame(1, b"1234")));
        assert!(!d.feed(&frame(2, b"56789")));
        assert!(d.truncated);
        assert_eq!(
            (d.stdout.as_slice(), d.stderr.as_slice()),
            (&b"1234"[..], &b"5678"[..])
        );
        // A frame announcing 4 GiB allocates nothing up front.
        let mut d = Demux::new(16);
        let mut huge = vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(&[0u8; 64]);
        assert!(!d.feed(&huge));
        assert_eq!(d.stdout.len(), 16);
        assert!(d.stdout.capacity() < 1024);
    }

    #[test]
    fn output_names_why_a_command_was_stopped() {
        let out = ExecOutput {
            exit_code: -1,
            stdout: "yyy\n".into(),
            stderr: String::new(),
            truncated: true,
            timed_out: false,
            stopped: Some("output truncated at 64 KiB; the command was stopped".into()),
        };
        assert_eq!(
            out.combined(),
            "yyy\noutput truncated at 64 KiB; the command was stopped"
        );
        assert_eq!(show_bytes(DEFAULT_OUTPUT_CAP), "64 KiB");
        assert_eq!(show_bytes(4 << 20), "4 MiB");
        assert_eq!(show_bytes(100), "100 bytes");
        assert_eq!(show_secs(Duration::from_secs(10)), "10s");
        assert_eq!(show_secs(Duration::from_millis(1500)), "1.5s");
    }
}
