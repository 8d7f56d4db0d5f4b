//! Web sessions: cookies signed with HMAC-SHA256 under a key kept in the state directory
//! (`web-session.key`, mode 0600), so sessions survive a controller restart.
//!
//! - `v6lab_admin`: `a.EXPIRES.D` where D is a digest of the administrator token: rotating the
//!   token ends every administrator session. Lasts [`ADMIN_SESSION_SECS`].
//! - `v6lab_student`: `s.LAB.D` where D is a digest of the lab's token. Valid while the lab
//!   exists, has not expired and keeps that token: a session ends with its lab.
//!
//! Both are `HttpOnly; SameSite=Strict`, and `Secure` behind an HTTPS proxy. A request that a
//! browser marks as coming from another site (`Sec-Fetch-Site: cross-site|same-site`) is never
//! authenticated by cookie, so other sites cannot act with a user's session.

use crate::api::{Api, Principal};
use crate::controller::now;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const ADMIN_COOKIE: &str = "v6lab_admin";
pub const STUDENT_COOKIE: &str = "v6lab_student";
/// How long an administrator stays signed in.
pub const ADMIN_SESSION_SECS: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The signing key of a state directory, created on first use.
fn key(state_dir: &Path) -> Option<Arc<[u8; 32]>> {
    static KEYS: Mutex<BTreeMap<PathBuf, Arc<[u8; 32]>>> = Mutex::new(BTreeMap::new());
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = keys.get(state_dir) {
        return Some(k.clone());
    }
    match load_or_create_key(state_dir) {
        Ok(k) => {
            let k = Arc::new(k);
            keys.insert(state_dir.to_owned(), k.clone());
            Some(k)
        }
        Err(e) => {
            tracing::error!(error = %e, "the web session key in {}", state_dir.display());
            None
        }
    }
}

fn load_or_create_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("web-session.key");
    if let Ok(s) = std::fs::read_to_string(&path)
        && let Ok(b) = hex::decode(s.trim())
        && let Ok(k) = <[u8; 32]>::try_from(b.as_slice())
    {
        return Ok(k);
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(".web-session.key.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(f, "{}", hex::encode(k))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(k)
}

fn digest(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes())[..12])
}

fn mac(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn sign(key: &[u8; 32], payload: &str) -> String {
    let mut m = mac(key);
    m.update(payload.as_bytes());
    format!("{payload}.{}", hex::encode(m.finalize().into_bytes()))
}

/// The payload of a cookie value whose signature is valid (checked in constant time).
fn verify<'a>(key: &[u8; 32], value: &'a str) -> Option<&'a str> {
    let (payload, sig) = value.rsplit_once('.')?;
    let sig = hex::decode(sig).ok()?;
    let mut m = mac(key);
    m.update(payload.as_bytes());
    m.verify_slice(&sig).ok()?;
    Some(payload)
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser says this request comes from another site.
pub fn cross_site(headers: &HeaderMap) -> bool {
    matches!(
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("cross-site" | "same-site")
    )
}

/// Whether the client reached us over HTTPS (through a proxy that says so).
pub fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> String {
    // Also when the controller serves HTTPS itself.
    let secure = if https(headers) || crate::tls::enabled() {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// `Set-Cookie` starting an administrator session.
pub fn admin_cookie(api: &Api, headers: &HeaderMap) -> Option<String> {
    let key = key(&api.ctl.cfg.state_dir)?;
    let token = api
        .admin_token
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let value = sign(
        &key,
        &format!("a.{}.{}", now() + ADMIN_SESSION_SECS, digest(&token)),
    );
    Some(set_cookie(
        headers,
        ADMIN_COOKIE,
        &value,
        ADMIN_SESSION_SECS,
    ))
}

/// `Set-Cookie` starting (or refreshing) a student session on `lab`: it lasts as long as the lab.
pub fn student_cookie(
    api: &Api,
    headers: &HeaderMap,
    lab: &crate::store::LabRow,
) -> Option<String> {
    let key = key(&api.ctl.cfg.state_dir)?;
    let value = sign(&key, &format!("s.{}.{}", lab.name, digest(&lab.token)));
    let max_age = (lab.expires - now()).max(60);
    Some(set_cookie(headers, STUDENT_COOKIE, &value, max_age))
}

/// `Set-Cookie` headers ending both sessions.
pub fn clear_cookies() -> [String; 2] {
    [ADMIN_COOKIE, STUDENT_COOKIE]
        .map(|n| format!("{n}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"))
}

fn admin_session(api: &Api, key: &[u8; 32], value: &str) -> Option<Principal> {
    let payload = verify(key, value)?;
    let mut parts = payload.split('.');
    let (Some("a"), Some(exp), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let token = api.admin_token.read().unwrap_or_else(|p| p.into_inner());
    (exp.parse::<i64>().ok()? > now() && d == digest(&token)).then_some(Principal::Admin)
}

fn student_session(api: &Api, key: &[u8; 32], value: &str) -> Option<Principal> {
    let payload = verify(key, value)?;
    let mut parts = payload.split('.');
    let (Some("s"), Some(lab), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let l = api.ctl.store.lab(lab).ok()??;
    (l.expires > now() && d == digest(&l.token)).then_some(Principal::Student(l.name))
}

/// Who the request's session cookies say is calling (the administrator first), if anyone.
pub fn principal(api: &Api, headers: &HeaderMap) -> Option<Principal> {
    if cross_site(headers) {
        return None;
    }
    let admin = cookie(headers, ADMIN_COOKIE);
    let student = cookie(headers, STUDENT_COOKIE);
    if admin.is_none() && student.is_none() {
        return None;
    }
    let key = key(&api.ctl.cfg.state_dir)?;
    admin
        .and_then(|v| admin_session(api, &key, v))
        .or_else(|| student.and_then(|v| student_session(api, &key, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let k = [7u8; 32];
        let v = sign(&k, "s.lab-a.0011");
        assert_eq!(verify(&k, &v), Some("s.lab-a.0011"));
        let forged = v.replace("lab-a", "lab-b");
        assert_eq!(verify(&k, &forged), None);
        assert_eq!(verify(&[8u8; 32], &v), None);
        assert_eq!(verify(&k, "s.lab-a.0011"), None);
        assert_eq!(verify(&k, ""), None);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; v6lab_student=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, STUDENT_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, ADMIN_COOKIE), None);
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h));
    }

    #[test]
    fn the_key_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("v6lab-web-key-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let a = load_or_create_key(&d).unwrap();
        let b = load_or_create_key(&d).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(d.join("web-session.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
