//! The gateway's bounds, decided here without IO (unit-tested with data):
//!
//! - Before login, a connection waits in [`Waiting`]: at most [`WAITING_PER_SOURCE`] per source
//!   (an IPv4 address, or an IPv6 /64) and [`MAX_WAITING`] in all. A new connection is always
//!   taken: when its source is at its bound, that source's oldest waiting connection is closed;
//!   when the gateway is at its bound, the oldest one of the source holding the most is closed.
//!   So a flood from one place closes only its own connections (and, behind one NAT address,
//!   those of its neighbours that are slower than the flood), never a student's from elsewhere.
//! - After login, [`PerLab`] counts a lab's connections and sessions.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// A client must have logged in this long after connecting, else it is disconnected (sshd's
/// LoginGraceTime). Long enough to compare the host key's fingerprint and paste a token.
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(30);
/// Connections waiting for a login, per source. A classroom behind one NAT address: 30
/// students, each with two terminals logging in at the same moment, fit.
pub const WAITING_PER_SOURCE: usize = 64;
/// Connections waiting for a login, in all (a file descriptor each, far below the usual 1024).
pub const MAX_WAITING: usize = 512;
/// Session channels at once per connection (OpenSSH's multiplexing opens several).
pub const CHANNELS_PER_CONNECTION: usize = 8;
/// Connections at once per student lab, after login.
pub const CONNECTIONS_PER_LAB: usize = 32;
/// Shells and commands at once per student lab (all its connections together).
pub const SESSIONS_PER_LAB: usize = 16;
/// The default deadline of a command run without a terminal (`ssh STUDENT+NODE@host -- cmd`).
pub const EXEC_DEADLINE: Duration = Duration::from_secs(3600);

/// What the administrator may set (`v6lab serve --ssh-...`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`LOGIN_DEADLINE`].
    pub login_deadline: Duration,
    /// How long a command without a terminal may run (`None`: no deadline). Shells with a
    /// terminal have none: a student may keep one open all day.
    pub exec_deadline: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_deadline: LOGIN_DEADLINE,
            exec_deadline: Some(EXEC_DEADLINE),
        }
    }
}

/// Where a connection comes from, as far as bounds go: an IPv4 address, or an IPv6 /64 (one
/// host usually has a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let o = a.octets();
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&o[..8]);
                    Source::V6(p)
                }
            },
        }
    }
}

/// Connections waiting for a login, oldest first, each with a `T` (what closes it).
#[derive(Debug)]
pub struct Waiting<T> {
    next: u64,
    entries: BTreeMap<u64, (Source, T)>,
    per_source: HashMap<Source, usize>,
    per_source_max: usize,
    max: usize,
}

impl<T> Waiting<T> {
    pub fn new(per_source_max: usize, max: usize) -> Self {
        Waiting {
            next: 0,
            entries: BTreeMap::new(),
            per_source: HashMap::new(),
            per_source_max: per_source_max.max(1),
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes a new connection; returns its id and the connections to close to make room.
    pub fn admit(&mut self, source: Source, value: T) -> (u64, Vec<T>) {
        let mut closed = Vec::new();
        while self.per_source.get(&source).copied().unwrap_or(0) >= self.per_source_max {
            closed.extend(self.oldest_of(source));
        }
        while self.entries.len() >= self.max {
            let Some(heaviest) = self.heaviest() else {
                break;
            };
            closed.extend(self.oldest_of(heaviest));
        }
        let id = self.next;
        self.next += 1;
        self.entries.insert(id, (source, value));
        *self.per_source.entry(source).or_default() += 1;
        (id, closed)
    }

    /// A connection logged in or ended; `None` if it was no longer waiting.
    pub fn leave(&mut self, id: u64) -> Option<T> {
        let (source, value) = self.entries.remove(&id)?;
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        Some(value)
    }

    fn oldest_of(&mut self, source: Source) -> Option<T> {
        let id = self
            .entries
            .iter()
            .find(|(_, (s, _))| *s == source)
            .map(|(id, _)| *id)?;
        self.leave(id)
    }

    /// The source with the most waiting connections; of equals, the one waiting longest.
    fn heaviest(&self) -> Option<Source> {
        let most = self.per_source.values().copied().max()?;
        self.entries
            .values()
            .map(|(s, _)| *s)
            .find(|s| self.per_source.get(s) == Some(&most))
    }
}

/// What a lab uses at once: connections and sessions.
#[derive(Debug, Default)]
pub struct PerLab {
    labs: HashMap<String, (usize, usize)>,
}

/// What [`PerLab`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Connection,
    Session,
}

impl Use {
    fn max(self) -> usize {
        match self {
            Use::Connection => CONNECTIONS_PER_LAB,
            Use::Session => SESSIONS_PER_LAB,
        }
    }

    /// What a student is told when the bound is reached.
    pub fn refusal(self, lab: &str) -> String {
        match self {
            Use::Connection => format!(
                "lab {lab} has {CONNECTIONS_PER_LAB} SSH connections open already (the most one \
                 lab may have); close one and try again"
            ),
            Use::Session => format!(
                "lab {lab} has {SESSIONS_PER_LAB} SSH sessions open already (the most one lab \
                 may have); leave one (exit) and try again"
            ),
        }
    }
}

impl PerLab {
    /// Takes one `what` for `lab`; false when the lab is at its bound.
    pub fn take(&mut self, lab: &str, what: Use) -> bool {
        let e = self.labs.entry(lab.to_owned()).or_default();
        let n = match what {
            Use::Connection => &mut e.0,
            Use::Session => &mut e.1,
        };
        if *n >= what.max() {
            if *e == (0, 0) {
                self.labs.remove(lab);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back what [`PerLab::take`] took.
    pub fn give(&mut self, lab: &str, what: Use) {
        if let Some(e) = self.labs.get_mut(lab) {
            let n = match what {
                Use::Connection => &mut e.0,
                Use::Session => &mut e.1,
            };
            *n = n.saturating_sub(1);
            if *e == (0, 0) {
                self.labs.remove(lab);
            }
        }
    }

    /// Labs using anything (the map never outgrows the labs in use).
    pub fn labs(&self) -> usize {
        self.labs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> Source {
        Source::of(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Source::of(mapped), v4(7));
        assert_ne!(v4(7), v4(8));
    }

    #[test]
    fn a_source_at_its_bound_loses_its_oldest_connection() {
        let mut w = Waiting::new(3, 100);
        for i in 0..3 {
            let (_, closed) = w.admit(v4(1), i);
            assert!(closed.is_empty());
        }
        let (_, closed) = w.admit(v4(2), 100);
        assert!(closed.is_empty(), "another source is not touched");
        let (_, closed) = w.admit(v4(1), 3);
        assert_eq!(closed, vec![0]);
        let (_, closed) = w.admit(v4(1), 4);
        assert_eq!(closed, vec![1]);
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn a_full_gateway_closes_the_oldest_of_the_heaviest_source() {
        let mut w = Waiting::new(10, 5);
        w.admit(v4(9), "student");
        for i in ["f0", "f1", "f2", "f3"] {
            w.admit(v4(1), i);
        }
        // Full: a newcomer from anywhere gets in; the flood pays.
        let (_, closed) = w.admit(v4(3), "newcomer");
        assert_eq!(closed, vec!["f0"]);
        let (_, closed) = w.admit(v4(9), "student 2");
        assert_eq!(closed, vec!["f1"]);
        // Two sources with as many: the one waiting longest pays.
        let mut w = Waiting::new(10, 4);
        w.admit(v4(2), "b0");
        w.admit(v4(1), "a0");
        w.admit(v4(1), "a1");
        w.admit(v4(2), "b1");
        let (_, closed) = w.admit(v4(3), "c");
        assert_eq!(closed, vec!["b0"]);
    }

    #[test]
    fn a_flood_from_one_source_never_crowds_out_another() {
        let mut w = Waiting::new(WAITING_PER_SOURCE, MAX_WAITING);
        let (student, _) = w.admit(v4(200), "student");
        for _ in 0..10_000 {
            w.admit(v4(1), "flood");
        }
        assert_eq!(w.len(), WAITING_PER_SOURCE + 1);
        assert_eq!(w.leave(student), Some("student"));
        // Many sources: still bounded, and a newcomer still gets in.
        for i in 0..2_000u32 {
            w.admit(Source::V4(i.to_be_bytes()), "many");
        }
        assert_eq!(w.len(), MAX_WAITING);
        let (newcomer, _) = w.admit(v4(201), "newcomer");
        assert_eq!(w.leave(newcomer), Some("newcomer"));
    }

    #[test]
    fn leaving_twice_is_harmless() {
        let mut w = Waiting::new(2, 2);
        let (id, _) = w.admit(v4(1), ());
        assert_eq!(w.leave(id), Some(()));
        assert_eq!(w.leave(id), None);
        assert!(w.is_empty());
        assert!(w.per_source.is_empty());
    }

    #[test]
    fn labs_have_bounded_connections_and_sessions() {
        let mut p = PerLab::default();
        for _ in 0..SESSIONS_PER_LAB {
            assert!(p.take("a", Use::Session));
        }
        assert!(!p.take("a", Use::Session));
        assert!(p.take("b", Use::Session), "another lab is not touched");
        assert!(p.take("a", Use::Connection));
        p.give("a", Use::Session);
        assert!(p.take("a", Use::Session));
        for _ in 0..SESSIONS_PER_LAB {
            p.give("a", Use::Session);
        }
        p.give("a", Use::Connection);
        p.give("b", Use::Session);
        assert_eq!(p.labs(), 0, "unused labs are forgotten");
        assert!(Use::Session.refusal("x").contains("16 SSH sessions"));
    }
}
