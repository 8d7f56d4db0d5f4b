//! HTTPS for the controller: its certificate (given as PEM files, or self-signed at first start
//! and kept in the state directory as `tls.crt` and `tls.key`, mode 0600), the certificate's
//! SHA-256 fingerprint (printed at start and on access sheets), the listener that serves HTTPS,
//! and the client side of a pinned fingerprint (the CLI and the tests).
//!
//! Everything uses rustls with the `ring` provider. Only HTTP/1.1 is offered (ALPN), which the
//! terminals' WebSocket upgrade needs.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
pub use rustls::{ClientConfig, ServerConfig};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The fingerprint of the certificate `v6lab serve` serves, set once at start when TLS is on.
pub static FINGERPRINT: OnceLock<String> = OnceLock::new();

/// Whether this controller serves HTTPS itself (then its cookies are `Secure`).
pub fn enabled() -> bool {
    FINGERPRINT.get().is_some()
}

/// The self-signed certificate's files in the state directory.
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// A TLS handshake that takes longer is dropped: a client that connects and says nothing holds
/// no task for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond, the listener stops accepting until one ends.
const MAX_HANDSHAKES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error(
        "`{0}` is not a SHA-256 fingerprint: write its 64 hex digits (colons allowed), as `v6lab serve` prints it"
    )]
    Fingerprint(String),
}

/// A certificate chain and its private key.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the first (leaf) certificate, as [`fingerprint`] writes it.
    pub fingerprint: String,
}

/// SHA-256 of a DER certificate as browsers and `openssl x509 -fingerprint -sha256` show it:
/// upper-case hex pairs separated by colons.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A fingerprint as people paste it: with or without colons or spaces, any case, with an
/// optional `SHA256:` (or openssl's `sha256 Fingerprint=`) in front.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], TlsError> {
    let t = s.trim();
    let t = t
        .rsplit_once('=')
        .map(|(_, v)| v)
        .or_else(|| {
            t.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("sha256:"))
                .map(|_| &t[7..])
        })
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    hex::decode(&hex)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| TlsError::Fingerprint(s.to_owned()))
}

/// The names a self-signed certificate is made for: this host's name, the listen address when
/// it is a specific one, and the loopback names.
pub fn self_signed_names(hostname: Option<&str>, listen: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    if let Some(h) = hostname {
        add(h.trim().to_owned());
    }
    if !listen.ip().is_unspecified() {
        add(listen.ip().to_string());
    }
    for n in ["localhost", "127.0.0.1", "::1"] {
        add(n.to_owned());
    }
    names
}

/// The certificate and key given as PEM files (`--tls-cert`, `--tls-key`).
pub fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.into(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    identity(cert, &cert_pem, key, &key_pem)
}

fn identity(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<Identity, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.into(),
            what: format!("not a PEM certificate ({e})"),
        })?;
    let Some(leaf) = certs.first() else {
        return Err(TlsError::Pem {
            path: cert.into(),
            what: "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: key.into(),
        what: format!("no PEM private key in it ({e})"),
    })?;
    Ok(Identity {
        certs,
        key,
        fingerprint,
    })
}

/// The state directory's self-signed certificate, generated (for `names`) when there is none
/// yet, and reused as it is afterwards so that its fingerprint stays the one students were given.
/// Returns whether it was generated now.
pub fn self_signed(state_dir: &Path, names: &[String]) -> Result<(Identity, bool), TlsError> {
    let (cert, key) = (state_dir.join(CERT_FILE), state_dir.join(KEY_FILE));
    if cert.exists() && key.exists() {
        let id = load(&cert, &key).map_err(|e| match e {
            TlsError::Pem { path, what } => TlsError::Pem {
                path,
                what: format!(
                    "{what}; remove {} and {} to generate a new certificate",
                    cert.display(),
                    key.display()
                ),
            },
            e => e,
        })?;
        return Ok((id, false));
    }
    // Neither, or one without the other (a start cut short): a new pair, key first.
    let pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "v6lab controller");
    let c = params.self_signed(&pair)?;
    let (cert_pem, key_pem) = (c.pem(), pair.serialize_pem());
    write_private(&key, key_pem.as_bytes())?;
    write_private(&cert, cert_pem.as_bytes())?;
    Ok((
        identity(&cert, cert_pem.as_bytes(), &key, key_pem.as_bytes())?,
        true,
    ))
}

/// Writes a file readable by its owner only, atomically (a temporary file renamed).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: this identity, HTTP/1.1.
pub fn server_config(id: &Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let mut c = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(id.certs.clone(), id.key.clone_key())?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// An HTTPS listener for `axum::serve`: TCP connections are accepted at once and their
/// handshakes run on their own tasks (bounded in number and time), so a client that never
/// completes one delays nobody. Failed handshakes are dropped quietly.
pub struct Listener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl Listener {
    pub fn new(tcp: tokio::net::TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait for some to be released.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                        // A TLS connection starts with a handshake record (22); anything else
                        // is most likely someone who typed http://.
                        let mut first = [0u8; 1];
                        if stream.peek(&mut first).await? == 1 && first[0] != 22 {
                            redirect_plain_http(stream).await?;
                            return Ok(None);
                        }
                        acceptor.accept(stream).await.map(Some)
                    })
                    .await;
                    match hs {
                        Ok(Ok(Some(tls))) => {
                            // The slot is held until the server takes the connection: handshakes
                            // never run ahead of it by more than the bound.
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP sent to HTTPS"),
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    drop(slot);
                });
            }
        });
        Ok(Listener { rx, local })
    }
}

/// Answers a plain HTTP request made to the HTTPS port with the https:// address to use.
async fn redirect_plain_http(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < 8192 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    stream.write_all(plain_http_answer(&buf).as_bytes()).await?;
    stream.shutdown().await
}

/// The answer to a plain HTTP request on the HTTPS port: a redirect to the same host and path
/// over https:// when both are well-formed, otherwise a 400 that says to use https://.
pub fn plain_http_answer(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .filter(|p| p.starts_with('/') && p.len() < 2048 && p.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("/");
    let host = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .filter(|h| {
            !h.is_empty()
                && h.len() < 256
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        });
    let (status, location, body) = match host {
        Some(h) => {
            let url = format!("https://{h}{path}");
            (
                "301 Moved Permanently",
                format!("Location: {url}\r\n"),
                format!("This server speaks HTTPS: {url}\n"),
            )
        }
        None => (
            "400 Bad Request",
            String::new(),
            "This server speaks HTTPS only: use https://\n".to_owned(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\n{location}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl axum::serve::Listener for Listener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A client configuration that trusts exactly the certificate with this SHA-256 fingerprint,
/// whatever name it carries (the fingerprint is the server's identity).
pub fn pinned_client(sha256: [u8; 32]) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// A client configuration that trusts the certificate authorities of a PEM file.
pub fn ca_client(path: &Path) -> Result<ClientConfig, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.into(),
            what: format!("not a PEM certificate ({e})"),
        })?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(TlsError::Pem {
            path: path.into(),
            what: "no usable certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has the fingerprint {}, not the one given",
                fingerprint(end_entity)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("v6lab-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn fingerprints_parse_as_people_paste_them() {
        let fp = fingerprint(b"certificate");
        assert_eq!(fp.len(), 95);
        let raw = parse_fingerprint(&fp).unwrap();
        assert_eq!(raw.as_slice(), Sha256::digest(b"certificate").as_slice());
        for s in [
            fp.to_lowercase(),
            fp.replace(':', ""),
            format!("SHA256:{fp}"),
            format!("sha256 Fingerprint={fp}"),
            format!("  {fp}\n"),
        ] {
            assert_eq!(parse_fingerprint(&s).unwrap(), raw, "{s}");
        }
        for bad in ["", "AB:CD", &fp[3..], &format!("{fp}:00"), "zz"] {
            let e = parse_fingerprint(bad).unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{e}");
        }
    }

    #[test]
    fn plain_http_on_the_https_port_is_sent_to_https() {
        let a = plain_http_answer(b"GET /s/v6s_abc?x=1 HTTP/1.1\r\nHost: lab.example:7464\r\n\r\n");
        assert!(a.starts_with("HTTP/1.1 301 "), "{a}");
        assert!(
            a.contains("\r\nLocation: https://lab.example:7464/s/v6s_abc?x=1\r\n"),
            "{a}"
        );
        let a = plain_http_answer(b"GET / HTTP/1.1\r\nhost: [2001:db8::5]:7464\r\n\r\n");
        assert!(
            a.contains("Location: https://[2001:db8::5]:7464/\r\n"),
            "{a}"
        );
        // Nothing from the request goes into the answer unless it is well-formed.
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: evil\"><script>\r\n\r\n",
            b"\x00\x01garbage",
        ] {
            let a = plain_http_answer(bad);
            assert!(
                a.starts_with("HTTP/1.1 400 ") && !a.contains("Location"),
                "{a}"
            );
        }
        let a = plain_http_answer(b"GET http://x/<b> HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(a.contains("Location: https://h/\r\n"), "{a}");
    }

    #[test]
    fn names_of_a_self_signed_certificate() {
        assert_eq!(
            self_signed_names(Some("lab1\n"), "0.0.0.0:7464".parse().unwrap()),
            ["lab1", "localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            self_signed_names(None, "[2001:db8::1]:443".parse().unwrap()),
            ["2001:db8::1", "localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(
            self_signed_names(Some("localhost"), "127.0.0.1:7464".parse().unwrap()),
            ["localhost", "127.0.0.1", "::1"]
        );
    }

    #[test]
    fn self_signed_is_generated_once_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp("reuse");
        let names = self_signed_names(Some("lab1"), "[::]:7464".parse().unwrap());
        let (a, new) = self_signed(&dir, &names).unwrap();
        assert!(new);
        assert_eq!(a.fingerprint, fingerprint(&a.certs[0]));
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(CERT_FILE), 0o600);
        // The same certificate on the next start, whatever names are asked for then.
        let (b, new) = self_signed(&dir, &["other".into()]).unwrap();
        assert!(!new);
        assert_eq!(b.fingerprint, a.fingerprint);
        // It serves: the configuration accepts the pair.
        server_config(&b).unwrap();
        // A key without its certificate (a start cut short): a new pair.
        std::fs::remove_file(dir.join(CERT_FILE)).unwrap();
        let (c, new) = self_signed(&dir, &names).unwrap();
        assert!(new);
        assert_ne!(c.fingerprint, a.fingerprint);
        // A damaged file is an error that says how to start afresh, never silently replaced.
        std::fs::write(dir.join(CERT_FILE), "garbage").unwrap();
        let e = self_signed(&dir, &names).err().unwrap().to_string();
        assert!(e.contains("remove") && e.contains(CERT_FILE), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn given_files_load_or_say_what_is_wrong() {
        let dir = tmp("load");
        let (id, _) = self_signed(&dir, &["localhost".into()]).unwrap();
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        assert_eq!(load(&cert, &key).unwrap().fingerprint, id.fingerprint);
        let e = load(&key, &key).err().unwrap().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let e = load(&cert, &cert).err().unwrap().to_string();
        assert!(e.contains("private key"), "{e}");
        let e = load(&dir.join("none.pem"), &key).err().unwrap().to_string();
        assert!(e.contains("none.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A handshake through the pinned client configuration: the right fingerprint connects (while
    /// idle connections wait for their handshake), another one is refused.
    #[tokio::test]
    async fn pinned_client_accepts_only_its_certificate() {
        let dir = tmp("pin");
        let (id, _) = self_signed(&dir, &["localhost".into()]).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = Listener::new(tcp, server_config(&id).unwrap()).unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = axum::serve::Listener::accept(&mut listener).await;
                drop(s);
            }
        });
        let connect = |pin: [u8; 32]| async move {
            let c = tokio_rustls::TlsConnector::from(Arc::new(pinned_client(pin).unwrap()));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
        };
        // Clients that connect and say nothing hold no one else up.
        let mut idle = Vec::new();
        for _ in 0..8 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let right = parse_fingerprint(&id.fingerprint).unwrap();
        connect(right).await.unwrap();
        let e = connect([0u8; 32]).await.unwrap_err().to_string();
        assert!(e.contains(&id.fingerprint), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
