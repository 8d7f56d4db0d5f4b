//! Tokens: the administrator's (a file with mode 0600 in the state directory) and one per
//! student lab (stored with the lab as a digest). Compared in constant time; failures
//! rate-limited per client address (IPv4) or network (IPv6 /64), in bounded memory.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
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
    let path = state_dir.join("admin.token");
    if !rotate && let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    let token = new_token("v6a_");
    write_private(state_dir, "admin.token", &token)?;
    Ok((token, true))
}

/// Reads a 32-byte key kept in hex in `dir/name` (mode 0600), creating it on first use.
pub fn secret_file(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    if let Ok(s) = std::fs::read_to_string(dir.join(name))
        && let Ok(b) = hex::decode(s.trim())
        && let Ok(k) = <[u8; 32]>::try_from(b.as_slice())
    {
        return Ok(k);
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
    write_private(dir, name, &hex::encode(k))?;
    Ok(k)
}

/// Writes `dir/name` (a line of `text`, mode 0600) whole or not at all: a new file, renamed.
fn write_private(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Whom failures are counted against: an IPv4 address, or an IPv6 /64 (one host's, or one
/// network's, addresses: a client can pick any address in its /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    V6Net(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a.into()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.into()),
                None => Source::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// Counts failed authentications per [`Source`]; too many in a window block the source, for
/// wrong tokens only (a correct token is never refused: callers check it first). The table has a
/// fixed capacity: when full, the source counted first is forgotten.
pub struct RateLimit {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    state: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    counts: HashMap<Source, (u32, Instant)>,
    /// Sources in the order they were first counted (eviction order).
    order: VecDeque<Source>,
}

/// Sources a [`RateLimit`] remembers by default (about 100 bytes each).
pub const RATE_LIMIT_CAPACITY: usize = 16_384;

impl RateLimit {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, RATE_LIMIT_CAPACITY)
    }

    pub fn with_capacity(max_failures: u32, window: Duration, capacity: usize) -> Self {
        RateLimit {
            max_failures,
            window,
            capacity: capacity.max(1),
            state: Mutex::new(Table {
                counts: HashMap::with_capacity(capacity.max(1)),
                order: VecDeque::with_capacity(capacity.max(1)),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether wrong tokens from this client are refused now (429).
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let t = self.table();
        matches!(t.counts.get(&Source::of(ip)), Some((n, since)) if *n >= self.max_failures && since.elapsed() < self.window)
    }

    /// Counts a failed authentication.
    pub fn failure(&self, ip: IpAddr) {
        let src = Source::of(ip);
        let mut t = self.table();
        if !t.counts.contains_key(&src) {
            while t.counts.len() >= self.capacity {
                match t.order.pop_front() {
                    Some(old) => {
                        t.counts.remove(&old);
                    }
                    None => break,
                }
            }
            t.order.push_back(src);
        }
        let e = t.counts.entry(src).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 = e.0.saturating_add(1);
    }

    /// Sources remembered now, and the table's allocated room (both bounded by the capacity).
    pub fn footprint(&self) -> (usize, usize) {
        let t = self.table();
        (t.counts.len(), t.counts.capacity().max(t.order.capacity()))
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

    #[test]
    fn ipv6_failures_count_per_64_and_mapped_ipv4_as_ipv4() {
        let r = RateLimit::new(2, Duration::from_secs(60));
        r.failure("2001:db8:1:2::1".parse().unwrap());
        r.failure("2001:db8:1:2:ffff::9".parse().unwrap());
        assert!(r.blocked("2001:db8:1:2::77".parse().unwrap()), "same /64");
        assert!(
            !r.blocked("2001:db8:1:3::1".parse().unwrap()),
            "another /64"
        );
        r.failure("::ffff:192.0.2.1".parse().unwrap());
        r.failure("192.0.2.1".parse().unwrap());
        assert!(r.blocked("192.0.2.1".parse().unwrap()));
        assert!(!r.blocked("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn a_million_addresses_stay_within_the_capacity() {
        let cap = 4096;
        let r = RateLimit::with_capacity(3, Duration::from_secs(60), cap);
        for i in 0..1_000_000u32 {
            let ip = if i % 2 == 0 {
                IpAddr::V4((0x0B00_0000 + (i >> 1)).into())
            } else {
                let net = 0x2001_0db8_0000_0000u128 | u128::from(i);
                IpAddr::V6((net << 64 | 1).into())
            };
            r.failure(ip);
        }
        let (len, room) = r.footprint();
        println!("1,000,000 sources: {len} remembered, room for {room} (capacity {cap})");
        assert!(len <= cap, "{len} sources remembered");
        // The hash table grows at most once (to make room for removed entries), never again.
        assert!(room <= 4 * cap, "room for {room}");
        // The most recent sources are the ones remembered.
        let r = RateLimit::with_capacity(1, Duration::from_secs(60), 2);
        for last in 1..=3u8 {
            r.failure(IpAddr::from([192, 0, 2, last]));
        }
        assert!(!r.blocked("192.0.2.1".parse().unwrap()));
        assert!(r.blocked("192.0.2.3".parse().unwrap()));
    }
}
