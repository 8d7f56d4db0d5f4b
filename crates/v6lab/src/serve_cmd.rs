//! `v6lab serve`: the controller.

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use v6lab_controller::api::{Api, router};
use v6lab_controller::auth::{RateLimit, admin_token};
use v6lab_controller::controller::{Config, Controller};
use v6lab_controller::store::Store;

#[derive(Args)]
pub struct ServeArgs {
    /// Address of the web UI and API. On loopback it serves plain HTTP unless TLS is asked for;
    /// on any other address it needs TLS (`--tls`, or `--tls-cert` and `--tls-key`), or else
    /// `--insecure-http`.
    #[arg(long, default_value = "127.0.0.1:7464", env = "V6LAB_LISTEN")]
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed certificate, generated at first start and kept in the
    /// state directory (tls.crt, tls.key); its SHA-256 fingerprint is printed at start and shown
    /// on access sheets.
    #[arg(long, env = "V6LAB_TLS", conflicts_with = "insecure_http")]
    pub tls: bool,
    /// Serve HTTPS with this certificate (PEM: the server's certificate, then any intermediates).
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with_all = ["insecure_http", "tls"], env = "V6LAB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "V6LAB_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (tokens and session cookies then cross the
    /// network in the clear: only behind a reverse proxy that does TLS, or on a trusted network).
    #[arg(long)]
    pub insecure_http: bool,
    /// Where the store and the administrator token live.
    #[arg(long, default_value = "/var/lib/v6lab", env = "V6LAB_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Warn this long before a lab expires.
    #[arg(long, default_value = "10m")]
    pub warn_before: String,
    /// The longest lifetime a lab or class may have (extensions included).
    #[arg(long, default_value = "7d")]
    pub max_lifetime: String,
    /// How often the exercises of class labs are checked (`0s`: never).
    #[arg(long, default_value = "30s")]
    pub check_interval: String,
    /// Labs created at once.
    #[arg(long, default_value_t = 6)]
    pub create_concurrency: usize,
    /// A reverse proxy in front of the controller (repeatable): for requests from it, the
    /// client's address (which wrong tokens are counted against) is taken from X-Forwarded-For.
    #[arg(long, value_name = "ADDR")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Address of the SSH gateway (`ssh -p 2222 STUDENT@host`, the lab's token as password);
    /// `off` disables it. [default: 127.0.0.1:2222, skipped with a warning when in use]
    #[arg(long, env = "V6LAB_SSH_LISTEN", value_name = "ADDR|off", value_parser = parse_ssh_listen)]
    pub ssh_listen: Option<SshListen>,
    /// How long an SSH client has to log in after connecting.
    #[arg(long, default_value = "30s")]
    pub ssh_login_deadline: String,
    /// How long a command run over SSH without a terminal (`ssh USER+NODE@host -- cmd`) may
    /// run before it is killed (`0s`: no deadline). Terminal sessions have none.
    #[arg(long, default_value = "1h")]
    pub ssh_exec_timeout: String,
    /// Replace the administrator token (the new one is printed once).
    #[arg(long)]
    pub rotate_admin_token: bool,
    /// Maxima and allowed images for every class's topology.
    #[command(flatten)]
    pub policy: crate::topology_cmd::PolicyArgs,
}

/// Where the SSH gateway listens unless told otherwise: loopback, so that exposing it to a
/// class is a decision (`--ssh-listen 0.0.0.0:2222`).
const DEFAULT_SSH_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2222);

/// Where the SSH gateway listens, if anywhere.
#[derive(Clone, Copy, Debug)]
pub enum SshListen {
    Off,
    On(SocketAddr),
}

fn parse_ssh_listen(v: &str) -> Result<SshListen, String> {
    if v == "off" {
        return Ok(SshListen::Off);
    }
    v.parse()
        .map(SshListen::On)
        .map_err(|e| format!("{e}; write an address and port such as 0.0.0.0:2222, or `off`"))
}

fn secs(flag: &str, v: &str) -> Result<u64> {
    v6lab_core::values::parse_duration(v)
        .map_err(|e| anyhow::anyhow!("--{flag} {v}: {e} (write e.g. 10m or 3h)"))
}

/// How the controller serves its web UI and API.
#[derive(Debug, PartialEq)]
enum Scheme {
    Http,
    /// The state directory's self-signed certificate.
    SelfSigned,
    /// `--tls-cert`, `--tls-key`.
    Given(PathBuf, PathBuf),
}

/// Plain HTTP only on loopback or when asked for by name: elsewhere tokens and cookies would
/// cross the classroom network in the clear.
fn scheme(a: &ServeArgs) -> Result<Scheme> {
    if let (Some(c), Some(k)) = (&a.tls_cert, &a.tls_key) {
        return Ok(Scheme::Given(c.clone(), k.clone()));
    }
    if a.tls {
        return Ok(Scheme::SelfSigned);
    }
    if a.insecure_http || a.listen.ip().to_canonical().is_loopback() {
        return Ok(Scheme::Http);
    }
    anyhow::bail!(
        "--listen {} is not a loopback address: serve HTTPS with --tls (a self-signed certificate \
         kept in the state directory) or --tls-cert FILE --tls-key FILE, or plain HTTP with \
         --insecure-http (only behind a reverse proxy that does TLS)",
        a.listen
    )
}

pub async fn serve(a: ServeArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let scheme = scheme(&a)?;
    a.policy.install()?;
    let warn_before = secs("warn-before", &a.warn_before)? as i64;
    let max_lifetime = secs("max-lifetime", &a.max_lifetime)? as i64;
    let check_interval = Duration::from_secs(secs("check-interval", &a.check_interval)?);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&a.state_dir)
            .with_context(|| format!("creating {}", a.state_dir.display()))?;
    }
    let (token, new) =
        admin_token(&a.state_dir, a.rotate_admin_token).context("the administrator token")?;
    if new {
        let path = a.state_dir.join("admin.token");
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            // Printed once, on the terminal that started the controller.
            eprintln!(
                "administrator token (shown once; kept in {}, mode 0600):\n  {token}",
                path.display()
            );
        } else {
            // Never into a log: stderr may be a journal or a file.
            eprintln!(
                "administrator token created in {} (mode 0600)",
                path.display()
            );
        }
    }
    let tls = tls_config(&scheme, &a)?;
    let owner = format!("controller-{}", controller_id(&a.state_dir)?);
    let store = Store::open(&a.state_dir.join("v6lab.db")).context("opening the store")?;
    let choice = crate::runtime_choice::runtime_choice();
    let runtime = crate::runtime_choice::connect().await?;
    let recipe = v6lab_runtime::runtime::Recipe::locate()?;
    let image = runtime
        .ensure_image(&recipe, false, &|s: &str| tracing::info!("image: {s}"))
        .await?
        .tag;
    if let v6lab_runtime::choice::RuntimeChoice::Kubernetes { namespace } = &choice {
        // Labs applied with kubectl, and the end of every Lab in the namespace.
        let k8s = v6lab_runtime::kubernetes::Kubernetes::connect(namespace).await?;
        let operator =
            v6lab_runtime::kubernetes::Operator::new(k8s, image.clone(), max_lifetime as u64);
        tokio::spawn(operator.run(v6lab_runtime::runtime::CancellationToken::new()));
        tracing::info!("Lab operator on namespace {namespace}");
    }
    let cfg = Config {
        state_dir: a.state_dir.clone(),
        warn_before,
        max_lifetime,
        tick: Duration::from_secs(1),
        create_concurrency: a.create_concurrency,
        check_interval,
        check_concurrency: 2,
        image,
        owner,
    };
    let ctl = Controller::new(store, runtime, cfg);
    ctl.event(
        None,
        None,
        "controller-started",
        &format!("controller listening on {}", a.listen),
    );
    // Labs that expired while the controller was down go first, before serving anything.
    if let Err(e) = ctl.clone().reconcile_once().await {
        tracing::warn!(error = %e, "first reconcile pass");
    }
    tokio::spawn(ctl.clone().run());
    tokio::spawn(ctl.clone().run_checks());
    let api = Api {
        ctl,
        admin_token: Arc::new(std::sync::RwLock::new(token)),
        limit: Arc::new(RateLimit::new(10, Duration::from_secs(60))),
        trusted_proxies: a.trusted_proxy.clone().into(),
    };
    // The SSH gateway shares the API's administrator token (rotations apply to both) and its
    // failure counts. An address given explicitly must work; the default one may be taken (by
    // another controller on this machine): then the controller runs without SSH.
    let ssh_listen = match a.ssh_listen {
        None => Some((DEFAULT_SSH_LISTEN, false)),
        Some(SshListen::On(addr)) => Some((addr, true)),
        Some(SshListen::Off) => None,
    };
    if ssh_listen.is_none() {
        let _ = v6lab_controller::web::SSH_GATEWAY_PORT.set(None);
    }
    let ssh_limits = v6lab_controller::ssh::limits::Limits {
        login_deadline: Duration::from_secs(
            secs("ssh-login-deadline", &a.ssh_login_deadline)?.max(1),
        ),
        exec_deadline: Some(secs("ssh-exec-timeout", &a.ssh_exec_timeout)?)
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
    };
    if let Some((addr, explicit)) = ssh_listen {
        match v6lab_controller::ssh::start(
            api.ctl.clone(),
            api.admin_token.clone(),
            api.limit.clone(),
            addr,
            ssh_limits,
        )
        .await
        {
            Ok(ssh) => {
                tracing::info!("SSH gateway on {} (host key {})", ssh.addr, ssh.fingerprint);
                let _ = v6lab_controller::web::SSH_GATEWAY_PORT.set(Some(ssh.addr.port()));
                let _ = v6lab_controller::web::SSH_HOST_KEY.set(ssh.fingerprint.to_string());
            }
            Err(e @ v6lab_controller::ssh::SshError::Listen { .. }) if !explicit => {
                let _ = v6lab_controller::web::SSH_GATEWAY_PORT.set(None);
                tracing::warn!(
                    "no SSH gateway: {e}; choose an address with --ssh-listen (or `off`)"
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            tracing::info!("web UI and API on http://{}", a.listen);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
        Some(config) => {
            tracing::info!("web UI and API on https://{}", a.listen);
            // `tap_io` only makes the peer's address available to the handlers, as with TCP.
            let listener = v6lab_controller::tls::Listener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The certificate to serve, if any; its fingerprint printed and kept for the access sheets.
fn tls_config(
    scheme: &Scheme,
    a: &ServeArgs,
) -> Result<Option<Arc<v6lab_controller::tls::ServerConfig>>> {
    use v6lab_controller::tls;
    let id = match scheme {
        Scheme::Http => return Ok(None),
        Scheme::Given(cert, key) => tls::load(cert, key)?,
        Scheme::SelfSigned => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
            let names = tls::self_signed_names(host.as_deref(), a.listen);
            let (id, new) = tls::self_signed(&a.state_dir, &names)?;
            let path = a.state_dir.join(tls::CERT_FILE);
            if new {
                tracing::info!(
                    "self-signed certificate created in {} for {}",
                    path.display(),
                    names.join(", ")
                );
            } else {
                tracing::info!("self-signed certificate from {}", path.display());
            }
            id
        }
    };
    tracing::info!("TLS certificate fingerprint (SHA-256): {}", id.fingerprint);
    let config = tls::server_config(&id)?;
    let _ = tls::FINGERPRINT.set(id.fingerprint);
    Ok(Some(config))
}

/// This controller's identity, kept in the state directory: it labels the labs it creates, so
/// it never touches another controller's labs.
fn controller_id(dir: &std::path::Path) -> Result<String> {
    let path = dir.join("controller.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_owned();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = v6lab_controller::auth::new_token("")[..12].to_owned();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ServeArgs,
    }

    fn scheme_of(args: &[&str]) -> Result<Scheme, String> {
        let t = T::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        scheme(&t.a).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_http_only_on_loopback_or_by_name() {
        for l in [
            "127.0.0.1:7464",
            "[::1]:7464",
            "[::ffff:127.0.0.1]:7464",
            "127.1.2.3:80",
        ] {
            assert_eq!(scheme_of(&["--listen", l]), Ok(Scheme::Http), "{l}");
        }
        for l in [
            "0.0.0.0:7464",
            "[::]:7464",
            "192.0.2.10:7464",
            "[2001:db8::1]:443",
        ] {
            let e = scheme_of(&["--listen", l]).unwrap_err();
            assert!(
                e.contains("not a loopback")
                    && e.contains("--tls ")
                    && e.contains("--insecure-http"),
                "{e}"
            );
            assert_eq!(
                scheme_of(&["--listen", l, "--insecure-http"]),
                Ok(Scheme::Http)
            );
            assert_eq!(scheme_of(&["--listen", l, "--tls"]), Ok(Scheme::SelfSigned));
        }
        assert_eq!(scheme_of(&["--tls"]), Ok(Scheme::SelfSigned));
        assert_eq!(
            scheme_of(&[
                "--listen",
                "[::]:443",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ]),
            Ok(Scheme::Given("c.pem".into(), "k.pem".into()))
        );
        // Contradictions and halves are refused by the flags themselves.
        assert!(
            scheme_of(&["--tls-cert", "c.pem"])
                .unwrap_err()
                .contains("--tls-key")
        );
        assert!(scheme_of(&["--tls", "--insecure-http"]).is_err());
        assert!(scheme_of(&["--tls", "--tls-cert", "c", "--tls-key", "k"]).is_err());
    }
}
