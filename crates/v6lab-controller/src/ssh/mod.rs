//! The SSH gateway: students reach their lab's nodes with `ssh -p 2222 STUDENT@server`, their
//! token as the password.
//!
//! - User names: [`user`] (`STUDENT`, `STUDENT+NODE`, `LAB+NODE`, `admin`).
//! - Authentication: password only; the token decides the lab (tokens are unique), the user name
//!   must name that lab, else the login is refused exactly like a wrong password. Tokens are
//!   compared in constant time and never logged; failures are counted per client address
//!   (shared with the HTTP API's [`RateLimit`]) and every refusal takes the same time.
//! - Sessions: [`session`] (PTY shells, exec requests, menus, the end of a lab ends its
//!   sessions). No port forwarding, no agent or X11 forwarding, no subsystems.
//! - Bounds: [`limits`] (connections waiting for a login per source and in all, the login
//!   deadline, channels per connection, connections and sessions per lab, the deadline of a
//!   command without a terminal).
//! - The host key: `ssh_host_ed25519_key` in the state directory (mode 0600), made at first start.

mod cut;
pub mod limits;
mod menu;
mod session;
pub mod user;

use crate::access::Principal;
use crate::auth::RateLimit;
use crate::controller::Controller;
use cut::{Cut, CutStream};
use limits::{Limits, PerLab, Source, Use, Waiting};
use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey, private::Ed25519Keypair};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use session::Access;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// The host key's file name in the state directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Every refused login takes this long (also the delay on failure).
const REJECTION_TIME: Duration = Duration::from_secs(1);
/// Messages queued per channel inside russh before it stops reading the client's socket.
const CHANNEL_BUFFER: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("the SSH host key {path}: {message}")]
    HostKey { path: PathBuf, message: String },
    /// (The cause is in the message, not a `source`: `{:#}` would print it twice.)
    #[error("listening for SSH on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// Reads the host key, creating it (Ed25519, mode 0600, with a `.pub` next to it) at first
/// start. A key readable by others is made private again.
pub fn host_key(state_dir: &Path) -> Result<PrivateKey, SshError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = state_dir.join(HOST_KEY_FILE);
    let fail = |message: String| SshError::HostKey {
        path: path.clone(),
        message,
    };
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!("{} was readable by others; now mode 0600", path.display());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(e.to_string()))?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
        return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| fail(e.to_string()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| fail(e.to_string()))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment("v6lab-ssh-gateway");
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| fail(e.to_string()))?;
    let tmp = state_dir.join(format!(".{HOST_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(e.to_string()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| fail(e.to_string()))?;
    if let Ok(public) = key.public_key().to_openssh() {
        let _ = std::fs::write(
            state_dir.join(format!("{HOST_KEY_FILE}.pub")),
            public + "\n",
        );
    }
    tracing::info!("SSH host key created in {}", path.display());
    Ok(key)
}

/// What every connection shares.
pub(crate) struct Shared {
    pub ctl: Arc<Controller>,
    pub admin_token: Arc<RwLock<String>>,
    pub limit: Arc<RateLimit>,
    pub limits: Limits,
    /// Connections waiting for a login, each with what closes it.
    waiting: Mutex<Waiting<Cut>>,
    per_lab: Mutex<PerLab>,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, Waiting<Cut>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn per_lab(&self) -> MutexGuard<'_, PerLab> {
        self.per_lab.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One connection or session of a student lab, counted while it lives.
pub(crate) struct LabSlot {
    sh: Arc<Shared>,
    lab: String,
    what: Use,
}

impl LabSlot {
    /// `None` when the lab is at its bound for `what`.
    pub(crate) fn take(sh: &Arc<Shared>, lab: &str, what: Use) -> Option<LabSlot> {
        sh.per_lab().take(lab, what).then(|| LabSlot {
            sh: sh.clone(),
            lab: lab.to_owned(),
            what,
        })
    }
}

impl Drop for LabSlot {
    fn drop(&mut self) {
        self.sh.per_lab().give(&self.lab, self.what);
    }
}

/// The running gateway.
pub struct Gateway {
    /// Where it listens (the port is known even when 0 was asked).
    pub addr: SocketAddr,
    /// The host key's fingerprint (`SHA256:...`), for the administrator to hand out.
    pub fingerprint: String,
    pub task: tokio::task::JoinHandle<()>,
}

/// Loads (or makes) the host key, listens on `listen` and serves SSH in the background.
/// `admin_token` and `limit` are the HTTP API's, so a rotation and failed attempts count for both.
pub async fn start(
    ctl: Arc<Controller>,
    admin_token: Arc<RwLock<String>>,
    limit: Arc<RateLimit>,
    listen: SocketAddr,
    limits: Limits,
) -> Result<Gateway, SshError> {
    let key = host_key(&ctl.cfg.state_dir)?;
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    let config = Arc::new(server::Config {
        server_id: SshId::Standard("SSH-2.0-v6lab".into()),
        methods: MethodSet::from(&[MethodKind::Password][..]),
        auth_rejection_time: REJECTION_TIME,
        // OpenSSH asks with "none" first to learn the methods: no reason to wait there.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 3,
        // Idle shells are normal in a class; dead clients are found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        // Bounded queues: a client that sends faster than a node reads is slowed down (russh
        // stops reading its socket), never buffered without end.
        channel_buffer_size: CHANNEL_BUFFER,
        ..Default::default()
    });
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| SshError::Listen {
            addr: listen,
            error,
        })?;
    let addr = listener.local_addr().unwrap_or(listen);
    let shared = Arc::new(Shared {
        ctl,
        admin_token,
        limit,
        limits,
        waiting: Mutex::new(Waiting::new(
            limits::WAITING_PER_SOURCE,
            limits::MAX_WAITING,
        )),
        per_lab: Mutex::new(PerLab::default()),
    });
    let task = tokio::spawn(accept_loop(listener, config, shared));
    Ok(Gateway {
        addr,
        fingerprint,
        task,
    })
}

/// Accepts every connection: each waits for its login in [`Waiting`], which closes the
/// oldest of a source (or of the heaviest source) to make room, never refuses a newcomer.
async fn accept_loop(listener: TcpListener, config: Arc<server::Config>, sh: Arc<Shared>) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "ssh: accepting a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let cut = Cut::default();
        let (id, closed) = sh.waiting().admit(Source::of(peer.ip()), cut.clone());
        if !closed.is_empty() {
            tracing::debug!(%peer, closed = closed.len(), "ssh: too many connections waiting to log in; closing the oldest");
        }
        for c in closed {
            c.cut();
        }
        tokio::spawn(connection(
            sh.clone(),
            config.clone(),
            socket,
            peer,
            id,
            cut,
        ));
    }
}

/// Leaves [`Waiting`] when the connection ends (it left already if it logged in).
struct WaitingSlot<'a>(&'a Shared, u64);

impl Drop for WaitingSlot<'_> {
    fn drop(&mut self) {
        self.0.waiting().leave(self.1);
    }
}

/// Serves one connection; cuts it if it has not logged in by the login deadline.
async fn connection(
    sh: Arc<Shared>,
    config: Arc<server::Config>,
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    cut: Cut,
) {
    let _waiting = WaitingSlot(&sh, id);
    let deadline = sh.limits.login_deadline;
    let (authed_tx, authed_rx) = oneshot::channel();
    let conn = Conn {
        sh: sh.clone(),
        peer,
        waiting: id,
        access: None,
        authed: Some(authed_tx),
        channels: Arc::new(AtomicUsize::new(0)),
        started: HashSet::new(),
        lab_slot: None,
        alive: watch::channel(()).0,
    };
    let session = async {
        match server::run_stream(config, CutStream::new(socket, cut.clone()), conn).await {
            Ok(running) => {
                if let Err(e) = running.await {
                    tracing::debug!(%peer, error = %e, "ssh: connection ended");
                }
            }
            Err(e) => tracing::debug!(%peer, error = %e, "ssh: connection setup failed"),
        }
    };
    let login = async {
        if let Ok(Ok(())) = tokio::time::timeout(deadline, authed_rx).await {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = session => {}
        () = login => {
            // As sshd does: no message, the connection is closed. The session (russh runs it
            // in a task of its own) fails at its next read or write and ends.
            tracing::debug!(%peer, "ssh: no login within {}s; closing", deadline.as_secs());
            cut.cut();
        }
    }
}

impl Shared {
    /// The token's owner, by the one lookup shared with HTTP ([`crate::access::lookup`]).
    fn principal(&self, token: &str) -> Option<Principal> {
        match crate::access::lookup(&self.ctl.store, &self.admin_token, token) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "ssh: reading the store");
                None
            }
        }
    }

    /// The access a login gets, or `None` (refused, whatever the reason).
    fn login(&self, user: &str, token: &str) -> Option<Access> {
        let target = user::parse(user);
        let principal = self.principal(token)?;
        let target = target?;
        match principal {
            Principal::Admin if target.name == user::ADMIN && target.node.is_none() => {
                Some(Access::AllLabs)
            }
            Principal::Admin => Some(Access::Lab {
                lab: target.name,
                node: target.node,
                admin: true,
            }),
            Principal::Student { lab, student } => {
                let named = target.name == lab
                    || student.map(|s| s.to_ascii_lowercase()).as_deref()
                        == Some(target.name.as_str());
                named.then_some(Access::Lab {
                    lab,
                    node: target.node,
                    admin: false,
                })
            }
        }
    }
}

/// One client connection.
struct Conn {
    sh: Arc<Shared>,
    peer: SocketAddr,
    /// Its place in [`Waiting`] until it logs in.
    waiting: u64,
    access: Option<Access>,
    authed: Option<oneshot::Sender<()>>,
    channels: Arc<AtomicUsize>,
    /// Channels that started a shell or a command (one each).
    started: HashSet<ChannelId>,
    /// A student lab's connection, counted.
    lab_slot: Option<LabSlot>,
    /// Dropped with the connection: its sessions learn that the client is gone.
    alive: watch::Sender<()>,
}

impl Conn {
    /// A correct token: the connection stops waiting, unless its lab has too many connections
    /// already (then its sessions say so, and it is closed at the login deadline).
    fn logged_in(&mut self, access: Access) {
        if let Access::Lab {
            lab, admin: false, ..
        } = &access
        {
            match LabSlot::take(&self.sh, lab, Use::Connection) {
                Some(slot) => self.lab_slot = Some(slot),
                None => {
                    tracing::debug!(peer = %self.peer.ip(), lab, "ssh: too many connections to one lab");
                    self.access = Some(Access::Refused(Use::Connection.refusal(lab)));
                    return;
                }
            }
        }
        self.sh.waiting().leave(self.waiting);
        self.access = Some(access);
        if let Some(tx) = self.authed.take() {
            let _ = tx.send(());
        }
    }

    fn start(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if self.started.insert(channel) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let ip: IpAddr = self.peer.ip();
        let refused = || {
            Ok(Auth::Reject {
                proceed_with_methods: None,
                partial_success: false,
            })
        };
        // The token first: a correct one is never refused; only failures are counted.
        match crate::access::authenticate(&self.sh.limit, ip, || self.sh.login(user, password)) {
            Ok(access) => {
                tracing::info!(peer = %ip, user = user::loggable(user), "ssh: login");
                self.logged_in(access);
                Ok(Auth::Accept)
            }
            Err(refusal) => {
                if refusal == crate::access::Refusal::Blocked {
                    tracing::info!(peer = %ip, "ssh: too many failed attempts from this source");
                }
                self.sh
                    .ctl
                    .metrics
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(peer = %ip, user = user::loggable(user), "ssh: login refused");
                refused()
            }
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(access) = self.access.clone() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if self.channels.fetch_add(1, Ordering::Relaxed) >= limits::CHANNELS_PER_CONNECTION {
            self.channels.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(peer = %self.peer.ip(), "ssh: too many channels on one connection");
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        reply.accept().await;
        let sh = self.sh.clone();
        let count = self.channels.clone();
        let peer = self.peer;
        let client = self.alive.subscribe();
        tokio::spawn(async move {
            session::run(sh, access, channel, peer, client).await;
            count.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.started.contains(&channel) {
            session.channel_failure(channel)
        } else {
            session.channel_success(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No sftp: the session task closes the channel.
        self.started.insert(channel);
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.started.remove(&channel);
        Ok(())
    }
}
