//! One session channel: a shell (with or without a PTY) or a command in a node, or a menu of
//! nodes (and, for the administrator, of labs) first. A session ends when its lab is deleted or
//! expires.

use super::limits::Use;
use super::menu::{self, Edit, Item, LineEditor};
use super::{LabSlot, Shared};
use crate::controller::now;
use crate::store::{EventRow, LabRow, LabState};
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use v6lab_runtime::runtime::{self, ExecLimits, Pipes, Streamed, Terminal};

/// What a login may reach.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// One lab (a student's own, or any for the administrator), maybe one node of it.
    Lab {
        lab: String,
        node: Option<String>,
        admin: bool,
    },
    /// The administrator's menu of every lab.
    AllLabs,
    /// A correct login that may not have a session: what to tell the user.
    Refused(String),
}

/// What the client asked the channel to run.
enum Request {
    Shell,
    Exec(String),
}

impl Request {
    fn command(&self) -> Option<&str> {
        match self {
            Request::Shell => None,
            Request::Exec(c) => Some(c),
        }
    }
}

/// How a session (or a part of it) ended.
enum End {
    /// The command or shell exited with this code (or the user left a menu: 0).
    Exit(i64),
    /// The client went away.
    Closed,
    /// The lab was deleted or expired.
    Gone(String),
    /// Something to tell the user, then exit status 1.
    Fail(String),
}

/// Messages of input queued between the client's channel and the node: when the node does not
/// read, the queue fills and russh stops reading the client (back-pressure, no buffering).
const INPUT_QUEUE: usize = 16;
/// russh has no flow control per channel: while one channel's input waits, the whole
/// connection waits (it cannot even see the client leave). A command that reads none of its
/// input for this long while more comes ends its session.
const INPUT_STALL: Duration = Duration::from_secs(30);
/// How often a session checks that its lab still exists, besides watching events.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// How long hanging up a terminal session's shell may take.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(10);

type Sink = Pin<Box<dyn AsyncWrite + Send>>;

/// What the client sends on the channel, once a shell or command was requested.
enum In {
    Data(Vec<u8>),
    Eof,
    Resize(u16, u16),
}

/// The client's input, read by a pump task into a short queue.
struct Input {
    rx: mpsc::Receiver<In>,
    /// True once the pump gave up: the node read nothing for [`INPUT_STALL`].
    stall: watch::Receiver<bool>,
    /// Bytes a menu read past the end of its line: they belong to what comes next.
    pending: Vec<u8>,
    /// The terminal's size (columns, rows).
    size: (u16, u16),
    eof: bool,
    editor: LineEditor,
}

impl Input {
    fn start(mut rd: ChannelReadHalf, size: (u16, u16)) -> (Input, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let (stall_tx, stall) = watch::channel(false);
        let pump = tokio::spawn(async move {
            while let Some(m) = rd.wait().await {
                let m = match m {
                    ChannelMsg::Data { data } => In::Data(data.to_vec()),
                    ChannelMsg::Eof => In::Eof,
                    ChannelMsg::WindowChange {
                        col_width,
                        row_height,
                        ..
                    } => In::Resize(dim(col_width, 80), dim(row_height, 24)),
                    ChannelMsg::Close => break,
                    _ => continue,
                };
                match tokio::time::timeout(INPUT_STALL, tx.send(m)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::info!("ssh: a command did not read its input; ending its session");
                        let _ = stall_tx.send(true);
                        break;
                    }
                }
            }
        });
        let input = Input {
            rx,
            stall,
            pending: Vec::new(),
            size,
            eof: false,
            editor: LineEditor::default(),
        };
        (input, pump)
    }

    /// The next input; `None` when the client closed the channel.
    async fn recv(&mut self) -> Option<In> {
        if !self.pending.is_empty() {
            return Some(In::Data(std::mem::take(&mut self.pending)));
        }
        let m = self.rx.recv().await?;
        match &m {
            In::Data(_) => {}
            In::Eof => self.eof = true,
            In::Resize(c, r) => self.size = (*c, *r),
        }
        Some(m)
    }

    /// An input that has ended (after a failure of its forwarder).
    fn ended() -> Input {
        let (_, rx) = mpsc::channel(1);
        Input {
            rx,
            stall: watch::channel(false).1,
            pending: Vec::new(),
            size: (80, 24),
            eof: true,
            editor: LineEditor::default(),
        }
    }
}

fn dim(v: u32, default: u16) -> u16 {
    match u16::try_from(v) {
        Ok(0) | Err(_) => default,
        Ok(v) => v,
    }
}

/// Why [`Forward::around`] returned.
enum Stop<T> {
    Done(T),
    Gone,
    Closed,
}

/// Copies the client's input into a running command (its stdin, and terminal resizes) until
/// stopped; gives the input back, so a menu can read what comes after.
///
/// The client's EOF closes the command's stdin only without a terminal. With one, sshd ignores
/// it too (the shell reads on until `exit`), and the engine would end the whole session's output
/// when a TTY exec's stdin closes.
struct Forward {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Input>,
}

impl Forward {
    fn start(
        mut input: Input,
        mut sink: Sink,
        eof_closes: bool,
        resize: Option<watch::Sender<(u16, u16)>>,
    ) -> Forward {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut open = true;
            // EOF came before this command started: it gets what was typed, then EOF.
            let mut eof_after_pending = input.eof && eof_closes;
            loop {
                if eof_after_pending && input.pending.is_empty() {
                    eof_after_pending = false;
                    open = false;
                    let _ = sink.shutdown().await;
                }
                let m = tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    m = input.recv() => m,
                };
                match m {
                    // The client closed the channel: the task ends by itself.
                    None => break,
                    Some(In::Data(d)) if open => {
                        let stall = &mut input.stall;
                        tokio::select! {
                            biased;
                            _ = &mut stopped => break,
                            // The pump gave up on a command that does not read.
                            Ok(_) = stall.wait_for(|s| *s) => break,
                            r = async {
                                sink.write_all(&d).await?;
                                sink.flush().await
                            } => open = r.is_ok(),
                        }
                    }
                    Some(In::Data(_)) => {}
                    Some(In::Eof) => {
                        if eof_closes && std::mem::take(&mut open) {
                            let _ = sink.shutdown().await;
                        }
                    }
                    Some(In::Resize(c, r)) => {
                        // Only the latest size is kept: a flood of resizes queues nothing.
                        if let Some(tx) = &resize {
                            let _ = tx.send((c, r));
                        }
                    }
                }
            }
            input
        });
        Forward { stop, task }
    }

    /// Runs `work` while forwarding; stops when it finishes, the lab ends or the client leaves.
    /// `client` ends with the client's connection (its input may not say so: the forwarder
    /// may be stuck writing to a command that does not read).
    async fn around<T>(
        self,
        work: impl Future<Output = T>,
        watch: &mut LabWatch<'_>,
        mut client: watch::Receiver<()>,
    ) -> (Stop<T>, Input) {
        let Forward { stop, mut task } = self;
        tokio::pin!(work);
        let why = tokio::select! {
            t = &mut work => Stop::Done(t),
            () = watch.gone() => Stop::Gone,
            r = &mut task => return (Stop::Closed, r.unwrap_or_else(|_| Input::ended())),
            () = async { while client.changed().await.is_ok() {} } => Stop::Closed,
        };
        let _ = stop.send(());
        let input = task.await.unwrap_or_else(|_| Input::ended());
        (why, input)
    }
}

/// Watches one lab: [`LabWatch::gone`] returns once it is deleted or has expired.
struct LabWatch<'a> {
    sh: &'a Shared,
    lab: String,
    class: Option<String>,
    events: Option<broadcast::Receiver<EventRow>>,
    tick: tokio::time::Interval,
}

impl<'a> LabWatch<'a> {
    fn new(sh: &'a Shared, row: &LabRow) -> Self {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        LabWatch {
            sh,
            lab: row.name.clone(),
            class: row.class.clone(),
            events: Some(sh.ctl.events.subscribe()),
            tick,
        }
    }

    fn still_there(&self) -> bool {
        match self.sh.ctl.store.lab(&self.lab) {
            Ok(Some(l)) => l.expires > now(),
            Ok(None) => false,
            // A store that cannot be read ends nobody's session.
            Err(_) => true,
        }
    }

    async fn gone(&mut self) {
        loop {
            let check = match self.events.as_mut() {
                Some(rx) => tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(e) => {
                            e.lab.as_deref() == Some(self.lab.as_str())
                                || (e.class.is_some() && e.class == self.class)
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => {
                            self.events = None;
                            false
                        }
                    },
                    _ = self.tick.tick() => true,
                },
                None => {
                    self.tick.tick().await;
                    true
                }
            };
            if check && !self.still_there() {
                return;
            }
        }
    }
}

/// A lab as a session sees it: its row and its nodes (name, role).
struct LabView {
    row: LabRow,
    nodes: Vec<Item>,
}

impl LabView {
    fn load(sh: &Shared, lab: &str, admin: bool) -> Result<LabView, String> {
        let row = match sh.ctl.store.lab(lab) {
            Ok(Some(r)) => r,
            Ok(None) if admin => return Err(format!("there is no lab {lab}")),
            Ok(None) => return Err(format!("lab {lab} has ended")),
            Err(e) => {
                tracing::error!(error = %e, "ssh: reading the store");
                return Err("the controller cannot read its store; try again later".into());
            }
        };
        if row.state != LabState::Ready {
            return Err(format!(
                "lab {lab} is not ready yet ({}); try again in a minute",
                row.state.as_str()
            ));
        }
        let plan = crate::variation::replan_lab(&sh.ctl.store, &row)
            .map_err(|_| format!("lab {lab}: its topology no longer plans"))?;
        let nodes = plan
            .nodes
            .iter()
            .map(|n| Item {
                name: n.name.clone(),
                about: n.role.as_str().to_owned(),
            })
            .collect();
        Ok(LabView { row, nodes })
    }

    fn node_names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn title(&self) -> String {
        format!(
            "Lab {} ({}), {} left",
            self.row.name,
            self.row.topology_name,
            left(self.row.expires)
        )
    }
}

/// Time left until `expires`, as `1h 05m` or `12m`.
fn left(expires: i64) -> String {
    let s = (expires - now()).max(0);
    let (h, m) = (s / 3600, (s % 3600 + 59) / 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m")
    }
}

/// Whatever the menus read.
enum Answer {
    Edit(Edit),
    Closed,
}

/// One channel's input and output.
struct Io {
    wr: ChannelWriteHalf<Msg>,
    stdout: Sink,
    stderr: Sink,
    tty: bool,
    /// `None` only while a [`Forward`] holds it.
    input: Option<Input>,
    peer: SocketAddr,
    /// Ends when the client's connection does.
    client: watch::Receiver<()>,
}

/// Serves one session channel until it ends; `client` ends when the connection does.
pub(super) async fn run(
    sh: Arc<Shared>,
    access: Access,
    channel: Channel<Msg>,
    peer: SocketAddr,
    client: watch::Receiver<()>,
) {
    let (mut rd, wr) = channel.split();
    let mut pty: Option<(u16, u16)> = None;
    let request = loop {
        match rd.wait().await {
            Some(ChannelMsg::RequestPty {
                col_width,
                row_height,
                ..
            }) => pty = Some((dim(col_width, 80), dim(row_height, 24))),
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) if pty.is_some() => pty = Some((dim(col_width, 80), dim(row_height, 24))),
            Some(ChannelMsg::RequestShell { .. }) => break Request::Shell,
            Some(ChannelMsg::Exec { command, .. }) => {
                break Request::Exec(String::from_utf8_lossy(&command).into_owned());
            }
            Some(ChannelMsg::RequestSubsystem { .. })
            | Some(ChannelMsg::Eof)
            | Some(ChannelMsg::Close)
            | None => {
                let _ = wr.close().await;
                return;
            }
            Some(_) => {}
        }
    };
    let (input, pump) = Input::start(rd, pty.unwrap_or((80, 24)));
    let mut io = Io {
        stdout: Box::pin(wr.make_writer()),
        stderr: Box::pin(wr.make_writer_ext(Some(1))),
        wr,
        tty: pty.is_some(),
        input: Some(input),
        peer,
        client,
    };
    // A student lab's sessions are counted (the administrator's are not).
    let slot = match &access {
        Access::Lab {
            lab, admin: false, ..
        } => match LabSlot::take(&sh, lab, Use::Session) {
            Some(s) => Some(s),
            None => {
                tracing::debug!(peer = %peer.ip(), lab, "ssh: too many sessions in one lab");
                io.finish(End::Fail(Use::Session.refusal(lab))).await;
                pump.abort();
                return;
            }
        },
        _ => None,
    };
    let end = match (&access, &request) {
        (Access::Refused(message), _) => End::Fail(message.clone()),
        (Access::Lab { lab, node, admin }, _) => {
            io.lab(&sh, lab, node.as_deref(), *admin, &request).await
        }
        (Access::AllLabs, Request::Shell) => io.all_labs(&sh).await,
        (Access::AllLabs, Request::Exec(_)) => End::Fail(
            "the administrator names a lab and a node to run a command: ssh LAB+NODE@...".into(),
        ),
    };
    io.finish(end).await;
    drop(slot);
    pump.abort();
}

impl Io {
    /// Text for the user: on the terminal, or on stderr without one.
    async fn say(&mut self, text: &str) {
        if self.tty {
            let t = format!("\r\n{}\r\n", text.replace('\n', "\r\n"));
            let _ = self.stdout.write_all(t.as_bytes()).await;
        } else {
            let _ = self.stderr.write_all(format!("{text}\n").as_bytes()).await;
        }
    }

    /// How a session whose input ended ends: the client left, or its command read nothing.
    fn input_end(&self) -> End {
        match &self.input {
            Some(i) if *i.stall.borrow() => End::Fail(format!(
                "the command read none of its input for {}s while more came; session closed",
                INPUT_STALL.as_secs()
            )),
            _ => End::Closed,
        }
    }

    /// Menu text, on stdout.
    async fn show(&mut self, text: &str) {
        let t = if self.tty {
            text.replace('\n', "\r\n")
        } else {
            text.to_owned()
        };
        let _ = self.stdout.write_all(t.as_bytes()).await;
    }

    async fn finish(mut self, end: End) {
        let status = match end {
            End::Exit(code) => Some(u32::try_from(code).unwrap_or(255)),
            End::Closed => None,
            End::Gone(lab) => {
                self.say(&format!(
                    "v6lab: lab {lab} has ended (deleted or expired); closing the session."
                ))
                .await;
                Some(129)
            }
            End::Fail(message) => {
                self.say(&format!("v6lab: {message}")).await;
                Some(1)
            }
        };
        if let Some(status) = status {
            let _ = self.wr.exit_status(status).await;
        }
        let _ = self.wr.eof().await;
        let _ = self.wr.close().await;
    }

    /// A line typed by the user (echoed on a terminal).
    async fn read_line(&mut self) -> Answer {
        let Io {
            input, stdout, tty, ..
        } = self;
        let input = input.as_mut().expect("the input is back");
        loop {
            if input.pending.is_empty() && input.eof {
                return Answer::Edit(Edit::Leave);
            }
            match input.recv().await {
                None => return Answer::Closed,
                Some(In::Data(d)) => {
                    let mut echo = Vec::new();
                    let (edit, used) = input.editor.feed(&d, &mut echo);
                    if *tty && !echo.is_empty() {
                        let _ = stdout.write_all(&echo).await;
                    }
                    if let Some(edit) = edit {
                        input.pending = d[used..].to_vec();
                        return Answer::Edit(edit);
                    }
                }
                Some(In::Eof) => return Answer::Edit(Edit::Leave),
                Some(In::Resize(..)) => {}
            }
        }
    }

    /// One lab: a node named in the user name, its only node, or a menu of its nodes.
    async fn lab(
        &mut self,
        sh: &Shared,
        lab: &str,
        node: Option<&str>,
        admin: bool,
        request: &Request,
    ) -> End {
        let view = match LabView::load(sh, lab, admin) {
            Ok(v) => v,
            Err(m) => return End::Fail(m),
        };
        match (node, request) {
            (Some(n), r) => self.node(sh, &view, n, r.command()).await,
            (None, r) if view.nodes.len() == 1 => {
                let n = view.nodes[0].name.clone();
                self.node(sh, &view, &n, r.command()).await
            }
            (None, Request::Exec(_)) => End::Fail(format!(
                "lab {lab} has several nodes ({}): name one in the user name, as USER+NODE",
                view.node_names()
            )),
            (None, Request::Shell) => self.node_menu(sh, view).await,
        }
    }

    /// The menu of a lab's nodes, until the user leaves (Ctrl-D) or the lab ends.
    async fn node_menu(&mut self, sh: &Shared, mut view: LabView) -> End {
        let lab = view.row.name.clone();
        let mut watch = LabWatch::new(sh, &view.row);
        loop {
            self.show(&menu::render(&view.title(), &view.nodes, "Node"))
                .await;
            let answer = tokio::select! {
                a = self.read_line() => a,
                () = watch.gone() => return End::Gone(lab),
            };
            match answer {
                Answer::Closed => return End::Closed,
                Answer::Edit(Edit::Leave) => {
                    self.show("\n").await;
                    return End::Exit(0);
                }
                Answer::Edit(Edit::Interrupt) => continue,
                Answer::Edit(Edit::Line(a)) if a.trim().is_empty() => continue,
                Answer::Edit(Edit::Line(a)) => {
                    let Some(i) = menu::choose(&a, &view.nodes) else {
                        self.say(&format!("no node `{}` in this lab", a.trim()))
                            .await;
                        continue;
                    };
                    let node = view.nodes[i].name.clone();
                    match self.node(sh, &view, &node, None).await {
                        End::Exit(code) => {
                            self.say(&format!("[left {node}: exit {code}]")).await;
                        }
                        End::Fail(m) => self.say(&format!("v6lab: {m}")).await,
                        end @ (End::Closed | End::Gone(_)) => return end,
                    }
                    // The lab's expiry may have moved meanwhile.
                    if let Ok(Some(row)) = sh.ctl.store.lab(&lab) {
                        view.row = row;
                    }
                }
            }
        }
    }

    /// The administrator's menu of every lab, then of its nodes.
    async fn all_labs(&mut self, sh: &Shared) -> End {
        loop {
            let labs = match sh.ctl.store.labs() {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "ssh: reading the store");
                    return End::Fail("the controller cannot read its store".into());
                }
            };
            if labs.is_empty() {
                self.say("there are no labs").await;
                return End::Exit(0);
            }
            let items: Vec<Item> = labs
                .iter()
                .map(|l| Item {
                    name: l.name.clone(),
                    about: format!(
                        "{:<8} {:<12} {} left",
                        l.state.as_str(),
                        l.topology_name,
                        left(l.expires)
                    ),
                })
                .collect();
            self.show(&menu::render("Labs", &items, "Lab")).await;
            match self.read_line().await {
                Answer::Closed => return End::Closed,
                Answer::Edit(Edit::Leave) => {
                    self.show("\n").await;
                    return End::Exit(0);
                }
                Answer::Edit(Edit::Interrupt) => continue,
                Answer::Edit(Edit::Line(a)) if a.trim().is_empty() => continue,
                Answer::Edit(Edit::Line(a)) => {
                    let Some(i) = menu::choose(&a, &items) else {
                        self.say(&format!("no lab `{}`", a.trim())).await;
                        continue;
                    };
                    let end = match LabView::load(sh, &items[i].name, true) {
                        Err(m) => End::Fail(m),
                        Ok(view) if view.nodes.len() == 1 => {
                            let n = view.nodes[0].name.clone();
                            self.node(sh, &view, &n, None).await
                        }
                        Ok(view) => self.node_menu(sh, view).await,
                    };
                    match end {
                        End::Closed => return End::Closed,
                        End::Fail(m) => self.say(&format!("v6lab: {m}")).await,
                        End::Gone(lab) => {
                            self.say(&format!("v6lab: lab {lab} has ended")).await;
                        }
                        End::Exit(_) => {}
                    }
                }
            }
        }
    }

    /// A shell (`command` = None) or a command in one node.
    async fn node(
        &mut self,
        sh: &Shared,
        view: &LabView,
        node: &str,
        command: Option<&str>,
    ) -> End {
        let lab = view.row.name.as_str();
        if !view.nodes.iter().any(|n| n.name == node) {
            return End::Fail(format!(
                "lab {lab} has no node {node}; its nodes: {}",
                view.node_names()
            ));
        }
        let argv: Vec<String> = match command {
            None => vec!["/bin/bash".into(), "-l".into()],
            Some(c) => vec!["/bin/bash".into(), "-c".into(), c.into()],
        };
        let mut watch = LabWatch::new(sh, &view.row);
        if !watch.still_there() {
            return End::Gone(lab.to_owned());
        }
        tracing::info!(peer = %self.peer.ip(), lab, node, command = command.is_some(), "ssh: session starts");
        let started = Instant::now();
        let mut end = if self.tty {
            self.pty(sh, lab, node, &argv, &mut watch).await
        } else {
            self.pipe(sh, lab, node, &argv, &mut watch).await
        };
        // A lab that expires is removed before its row: the command may die first (137).
        if matches!(end, End::Exit(_) | End::Fail(_)) && !watch.still_there() {
            end = End::Gone(lab.to_owned());
        }
        let how = match &end {
            End::Exit(c) => format!("exit {c}"),
            End::Closed => "client left".into(),
            End::Gone(_) => "lab ended".into(),
            End::Fail(m) => m.clone(),
        };
        tracing::info!(peer = %self.peer.ip(), lab, node, secs = started.elapsed().as_secs(), "ssh: session ends: {how}");
        end
    }

    /// With a terminal: the runtime's interactive exec, resizes applied.
    async fn pty(
        &mut self,
        sh: &Shared,
        lab: &str,
        node: &str,
        argv: &[String],
        watch: &mut LabWatch<'_>,
    ) -> End {
        let input = self.input.take().expect("the input is back");
        // The terminal has its size before the first command runs (the engine applies a resize
        // only after the exec started: Docker 20.10 has no initial console size), and the
        // session's processes carry a mark, so a hangup finds them when the client vanishes.
        let mark = new_mark();
        let argv = marked(&mark, input.size, argv);
        let (stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
        let (resize_tx, resize_rx) = watch::channel(input.size);
        let resize_rx = tokio_stream::wrappers::WatchStream::new(resize_rx);
        let fwd = Forward::start(input, Box::pin(stdin_w), false, Some(resize_tx));
        let connection = self.client.clone();
        let term = Terminal {
            stdin: Box::new(stdin_r),
            stdout: &mut self.stdout,
            resize: Box::pin(resize_rx),
        };
        let work = sh.ctl.runtime.exec_interactive(lab, node, &argv, term);
        let (why, input) = fwd.around(work, watch, connection).await;
        self.input = Some(input);
        match why {
            Stop::Done(Ok(code)) => End::Exit(code),
            Stop::Done(Err(e)) => End::Fail(runtime_problem(lab, node, &e)),
            Stop::Gone => End::Gone(lab.to_owned()),
            Stop::Closed => {
                hang_up(sh, lab, node, &mark).await;
                self.input_end()
            }
        }
    }

    /// Without a terminal: stdin, stdout and stderr kept apart, as sshd does with pipes. The
    /// output goes to the client as fast as it reads (each write waits for the client's SSH
    /// window) and the node's output is read no faster: nothing piles up in between. At the
    /// deadline, or when the client leaves (sshd closes the pipes; a command that never writes
    /// would run on), the runtime kills the command's processes from the host.
    async fn pipe(
        &mut self,
        sh: &Shared,
        lab: &str,
        node: &str,
        argv: &[String],
        watch: &mut LabWatch<'_>,
    ) -> End {
        let input = self.input.take().expect("the input is back");
        let (stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
        let fwd = Forward::start(input, Box::pin(stdin_w), true, None);
        let connection = self.client.clone();
        let deadline = sh.limits.exec_deadline;
        let pipes = Pipes {
            stdin: Box::new(stdin_r),
            stdout: &mut self.stdout,
            stderr: &mut self.stderr,
        };
        let work = sh
            .ctl
            .runtime
            .exec_streamed(lab, node, argv, pipes, deadline);
        let (why, input) = fwd.around(work, watch, connection).await;
        self.input = Some(input);
        match why {
            Stop::Done(Ok(Streamed::Exited(code))) => End::Exit(code),
            Stop::Done(Ok(Streamed::DeadlinePassed)) => {
                let d = deadline.unwrap_or_default().as_secs();
                tracing::info!(peer = %self.peer.ip(), lab, node, "ssh: a command reached its deadline");
                End::Fail(format!(
                    "the command was stopped after {}: commands without a terminal may run \
                     that long; for longer, use a terminal (ssh -t)",
                    duration_text(d)
                ))
            }
            Stop::Done(Err(e)) => End::Fail(runtime_problem(lab, node, &e)),
            Stop::Gone => End::Gone(lab.to_owned()),
            // The command was dropped with `work`: the runtime stopped it.
            Stop::Closed => self.input_end(),
        }
    }
}

/// A new session's mark (a random string its processes carry in their environment).
fn new_mark() -> String {
    crate::auth::new_token("")[..16].to_owned()
}

/// `argv` run with `V6LAB_SSH_SESSION=mark` in its environment, so [`hang_up`] finds its
/// shell, and with the terminal's size set first (the engine applies a resize only after the
/// exec started: Docker 20.10 has no initial console size).
fn marked(mark: &str, (cols, rows): (u16, u16), argv: &[String]) -> Vec<String> {
    let (cols, rows) = (cols.to_string(), rows.to_string());
    let mut wrapped: Vec<String> = [
        "/bin/sh",
        "-c",
        "[ -n \"$1\" ] && stty cols \"$1\" rows \"$2\" 2>/dev/null; V6LAB_SSH_SESSION=$3; \
         export V6LAB_SSH_SESSION; shift 3; exec \"$@\"",
        "v6lab",
    ]
    .map(String::from)
    .to_vec();
    wrapped.extend([cols, rows, mark.to_owned()]);
    wrapped.extend_from_slice(argv);
    wrapped
}

/// `3600` as `1h`, `90` as `90s`.
fn duration_text(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Hangs up a terminal session's shell (the process the engine started, parent 0 in the
/// node's PID namespace, found by the session's mark): the engine keeps an exec running when
/// its connection closes. The shell passes the hangup on to its jobs, as with sshd; daemons it
/// started stay. Through the runtime's bounded exec: a node that does not answer is left alone.
async fn hang_up(sh: &Shared, lab: &str, node: &str, mark: &str) {
    const SCRIPT: &str = "for d in /proc/[0-9]*; do \
        tr '\\0' '\\n' < \"$d/environ\" 2>/dev/null | grep -qx \"V6LAB_SSH_SESSION=$1\" \
        && grep -q '^PPid:[[:space:]]*0$' \"$d/status\" \
        && kill -HUP \"${d#/proc/}\"; done; true";
    let argv: Vec<String> = ["/bin/sh", "-c", SCRIPT, "v6lab", mark]
        .map(String::from)
        .to_vec();
    let limits = ExecLimits::within(SIGNAL_DEADLINE);
    if let Err(e) = sh.ctl.runtime.exec(lab, node, &argv, limits).await {
        tracing::debug!(lab, node, error = %e, "ssh: hanging up a session");
    }
}

fn runtime_problem(lab: &str, node: &str, e: &runtime::Error) -> String {
    use runtime::Error;
    match e {
        Error::NodeNotFound { .. } | Error::NodeNotRunning { .. } => not_running(lab, node),
        _ => {
            tracing::warn!(lab, node, error = %e, "ssh: a terminal session in a node");
            format!("the session in {node} failed; try again in a minute")
        }
    }
}

fn not_running(lab: &str, node: &str) -> String {
    format!(
        "{node} of lab {lab} is not running (is the lab being repaired?); try again in a minute"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_well() {
        let t = now();
        assert_eq!(left(t - 5), "0m");
        assert_eq!(left(t + 600), "10m");
        assert_eq!(left(t + 3600 + 300), "1h 05m");
    }

    #[test]
    fn terminal_sizes_have_defaults() {
        assert_eq!(dim(0, 80), 80);
        assert_eq!(dim(132, 80), 132);
        assert_eq!(dim(70_000, 24), 24);
    }
}
