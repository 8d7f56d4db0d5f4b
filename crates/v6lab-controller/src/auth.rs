//! Tokens: the administrator's (a file with mode 0600 in the state directory) and one per
//! student lab (stored with the lab). Compared in constant time; failures rate-limited per client.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// A new random token with a readable prefix: `v6a_` (administrator) or `v6s_` (student),
/// then 32 random bytes in hex (256 bits).
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the kernel's random source");
    format!("{prefix}{}", hex::encode(b))
}

/// Constant-time comparison (of digests, so lengths do not leak either).
pub fn token_eq(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into() && !expected.is_empty()
}

/// Reads the administrator token, creating it (mode 0600) on first start or when `rotate`.
/// Returns the token and whether it is new (to be printed once).
pub fn admin_token(state_dir: &Path, rotate: bool) -> std::io::Result<(String, bool)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("admin.token");
    if !rotate && let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    let token = new_token("v6a_");
    let tmp = state_dir.join(".admin.token.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok((token, true))
}

/// Counts failed authentications per client address; too many in a window blocks the client.
pub struct RateLimit {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl RateLimit {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        RateLimit {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the client is blocked now.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        matches!(s.get(&ip), Some((n, since)) if *n >= self.max_failures && since.elapsed() < self.window)
    }

    pub fn failure(&self, ip: IpAddr) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let e = s.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        if s.len() > 10_000 {
            let window = self.window;
            s.retain(|_, (_, t)| t.elapsed() < window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_compare_exactly() {
        let a = new_token("v6s_");
        let b = new_token("v6s_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(token_eq(&a, &a));
        assert!(!token_eq(&a, &b));
        assert!(!token_eq("", ""));
    }

    #[test]
    fn admin_token_is_private_and_rotatable() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("v6lab-auth-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let (t1, new1) = admin_token(&d, false).unwrap();
        assert!(new1);
        let mode = std::fs::metadata(d.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (t2, new2) = admin_token(&d, false).unwrap();
        assert_eq!((t1.clone(), false), (t2, new2));
        let (t3, new3) = admin_token(&d, true).unwrap();
        assert!(new3 && t3 != t1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rate_limit_blocks_after_repeated_failures() {
        let r = RateLimit::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(!r.blocked(ip));
            r.failure(ip);
        }
        assert!(r.blocked(ip));
        assert!(!r.blocked("127.0.0.2".parse().unwrap()));
    }
}
