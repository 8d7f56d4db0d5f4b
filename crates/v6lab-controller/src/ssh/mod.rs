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
//! - The host key: `ssh_host_ed25519_key` in the state directory (mode 0600), made at first start.

mod menu;
mod session;
pub mod user;

use crate::access::Principal;
use crate::auth::RateLimit;
use crate::controller::Controller;
use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey, private::Ed25519Keypair};
use russh::server::{self, Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, SshId};
use session::Access;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The host key's file name in the state directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// A client must authenticate within this time.
const LOGIN_GRACE: Duration = Duration::from_secs(60);
/// Every refused login takes this long (also the delay on failure).
const REJECTION_TIME: Duration = Duration::from_secs(1);
/// Connections at once (authenticated or not).
const MAX_CONNECTIONS: usize = 512;
/// Session channels at once per connection.
const MAX_CHANNELS: usize = 8;

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
    connections: AtomicUsize,
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
        connections: AtomicUsize::new(0),
    });
    let task = tokio::spawn(accept_loop(listener, config, shared));
    Ok(Gateway {
        addr,
        fingerprint,
        task,
    })
}

/// Counts a connection while it lives.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

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
        if sh.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            sh.connections.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, "ssh: too many connections; refusing one");
            continue;
        }
        let slot = ConnectionSlot(sh.clone());
        let config = config.clone();
        let sh = sh.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (authed_tx, authed_rx) = oneshot::channel();
            let conn = Conn {
                sh,
                peer,
                access: None,
                authed: Some(authed_tx),
                channels: Arc::new(AtomicUsize::new(0)),
                started: HashSet::new(),
            };
            let running =
                match tokio::time::timeout(LOGIN_GRACE, server::run_stream(config, socket, conn))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "ssh: connection setup failed");
                        return;
                    }
                    Err(_) => return,
                };
            let handle = running.handle();
            tokio::pin!(running);
            // Unauthenticated connections get LOGIN_GRACE, then they are closed.
            let grace = async {
                if let Ok(Ok(())) = tokio::time::timeout(LOGIN_GRACE, authed_rx).await {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = &mut running => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "ssh: connection ended");
                    }
                }
                () = grace => {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "login timed out".into(),
                            String::new(),
                        )
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
                }
            }
        });
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
    access: Option<Access>,
    authed: Option<oneshot::Sender<()>>,
    channels: Arc<AtomicUsize>,
    /// Channels that started a shell or a command (one each).
    started: HashSet<ChannelId>,
}

impl Conn {
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
                self.access = Some(access);
                if let Some(tx) = self.authed.take() {
                    let _ = tx.send(());
                }
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
        if self.channels.fetch_add(1, Ordering::Relaxed) >= MAX_CHANNELS {
            self.channels.fetch_sub(1, Ordering::Relaxed);
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        reply.accept().await;
        let sh = self.sh.clone();
        let count = self.channels.clone();
        let peer = self.peer;
        tokio::spawn(async move {
            session::run(sh, access, channel, peer).await;
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
