//! The CLI's connection to the controller: HTTP/1.1 over TCP, or over TLS for an `https://`
//! controller, trusting either the certificate with a given SHA-256 fingerprint (`--tls-fingerprint`,
//! for the controller's self-signed certificate), the authorities of a PEM file (`--ca`), or the
//! system's. There is no way to accept any certificate.

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use v6lab_controller::tls;

/// Responses larger than this are refused (the biggest, a class of many labs, is far smaller).
pub const MAX_RESPONSE: usize = 64 << 20;

pub struct Transport {
    /// `scheme://host:port` as given, for messages.
    pub base: String,
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    /// The path the controller's URL starts with (`""` at the root).
    prefix: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

/// How to trust an HTTPS controller.
pub struct Trust<'a> {
    pub fingerprint: Option<&'a str>,
    pub ca: Option<&'a Path>,
}

impl Transport {
    pub fn new(base: &str, trust: Trust) -> Result<Transport> {
        let base = base.trim_end_matches('/');
        let uri: Uri = base
            .parse()
            .map_err(|e| anyhow!("the controller's URL {base:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!(
                "the controller's URL {base:?} must start with http:// or https:// (e.g. https://lab.example.org:7464)"
            ),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("the controller's URL {base:?} has no host"))?
            .to_string();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let tls = if https {
            let config = match (trust.fingerprint, trust.ca) {
                (Some(f), _) => tls::pinned_client(tls::parse_fingerprint(f)?)?,
                (None, Some(ca)) => tls::ca_client(ca)?,
                (None, None) => system_roots()?,
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| anyhow!("the controller's host {host:?}: {e}"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            if trust.fingerprint.is_some() || trust.ca.is_some() {
                bail!(
                    "--tls-fingerprint and --ca are for an https:// controller, and {base} is plain HTTP: write https://"
                );
            }
            None
        };
        Ok(Transport {
            base: base.to_owned(),
            host,
            port,
            authority,
            prefix,
            tls,
        })
    }

    /// One request on its own connection.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        if json.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(json.unwrap_or_default())))?;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| {
                format!(
                    "cannot reach the controller at {} (is `v6lab serve` running?)",
                    self.base
                )
            })?;
        match &self.tls {
            None => exchange(TokioIo::new(tcp), req).await,
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    anyhow!(
                        "TLS with the controller at {}: {e}\n(for the controller's self-signed certificate give its fingerprint, printed by `v6lab serve` and on the access sheets: --tls-fingerprint or V6LAB_TLS_FINGERPRINT; for a private authority: --ca FILE)",
                        self.base
                    )
                })?;
                exchange(TokioIo::new(stream), req).await
            }
        }
        .with_context(|| format!("talking to the controller at {}", self.base))
    }
}

async fn exchange<T>(io: TokioIo<T>, req: Request<Full<Bytes>>) -> Result<Response<Incoming>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// A whole response body, up to [`MAX_RESPONSE`].
pub async fn body(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the controller's answer: {e}"))?
        .to_bytes())
}

/// The next piece of a streamed body (`None` at its end).
pub async fn chunk(resp: &mut Response<Incoming>) -> Result<Option<Bytes>> {
    while let Some(frame) = resp.body_mut().frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// The fingerprint of the local controller's self-signed certificate, for an https:// URL on
/// loopback: read from its state directory like its admin.token (both are root's only).
pub fn local_fingerprint(base: &str, state_dir: &Path) -> Option<String> {
    let uri: Uri = base.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    if uri.scheme_str() != Some("https") || !loopback {
        return None;
    }
    let pem = std::fs::read(state_dir.join(tls::CERT_FILE)).ok()?;
    let der: rustls::pki_types::CertificateDer =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).ok()?;
    Some(tls::fingerprint(&der))
}

/// The authorities the system trusts (`/etc/ssl/certs`, or `SSL_CERT_FILE`).
fn system_roots() -> Result<rustls::ClientConfig> {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(std::path::PathBuf::from),
        );
    for c in candidates {
        if c.exists() {
            return Ok(tls::ca_client(&c)?);
        }
    }
    bail!(
        "no system certificate authorities found (/etc/ssl/certs/ca-certificates.crt): give the controller's certificate fingerprint with --tls-fingerprint, or its authority with --ca FILE"
    )
}
