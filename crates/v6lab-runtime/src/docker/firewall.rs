//! Lets bridged lab traffic through Docker's packet filter.
//!
//! Docker loads `br_netfilter` and sets `net.bridge.bridge-nf-call-iptables=1` (and `...-ip6tables`):
//! frames crossing *any* Linux bridge, ours included, then traverse the host's iptables
//! `FORWARD` chain, whose policy Docker sets to `DROP` (ip6tables too from Docker 27 on). The
//! per-bridge `nf_call_iptables` option cannot turn that off (the kernel ORs it with the global
//! sysctl). So, like containerlab, v6lab inserts one rule into Docker's `DOCKER-USER` chain,
//! for IPv4 and IPv6: `-i v6l+ -o v6l+ -j ACCEPT`. For bridged frames both the in and out
//! interface are the bridge, so the rule matches traffic *within* a lab segment only; the host
//! has no address on those bridges and never routes between them. The rule is shared by all
//! labs: `up` adds it once, `down_all` removes it. When a `DOCKER-USER` chain does not exist
//! (Docker runs without iptables) nothing is done.

use tokio::process::Command;
use tokio::sync::Mutex;

const CHAIN: &str = "DOCKER-USER";
const RULE: [&str; 6] = ["-i", "v6l+", "-o", "v6l+", "-j", "ACCEPT"];
const TOOLS: [&str; 2] = ["iptables", "ip6tables"];

/// Serializes check-then-insert within this process (concurrent `up`s).
static LOCK: Mutex<()> = Mutex::const_new(());

async fn run(tool: &str, args: &[&str]) -> Result<bool, String> {
    match Command::new(tool).arg("-w").args(args).output().await {
        Ok(out) => Ok(out.status.success()),
        Err(e) => Err(format!("{tool}: {e}")),
    }
}

async fn rule(tool: &str, op: &str) -> Result<bool, String> {
    let mut args = vec![op, CHAIN];
    args.extend_from_slice(&RULE);
    run(tool, &args).await
}

async fn chain_exists(tool: &str) -> Result<bool, String> {
    run(tool, &["-t", "filter", "-n", "-L", CHAIN]).await
}

/// Makes sure the rule is present (best effort: failures are logged, not fatal, since IPv6
/// usually flows anyway on Docker 20.10).
pub(crate) async fn ensure() {
    let _guard = LOCK.lock().await;
    for tool in TOOLS {
        let result = async {
            if !chain_exists(tool).await? || rule(tool, "-C").await? {
                return Ok(());
            }
            if rule(tool, "-I").await? {
                Ok(())
            } else {
                Err(format!("{tool} -I {CHAIN} failed"))
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                "cannot allow bridged lab traffic through Docker's {CHAIN} chain ({e}); \
                 lab segments may drop forwarded IPv4/IPv6 frames"
            );
        }
    }
}

/// Removes every copy of the rule; returns how many were removed.
pub(crate) async fn remove() -> usize {
    let _guard = LOCK.lock().await;
    let mut removed = 0;
    for tool in TOOLS {
        // Bounded: a copy per concurrent process at most, in practice one.
        for _ in 0..16 {
            match rule(tool, "-D").await {
                Ok(true) => removed += 1,
                _ => break,
            }
        }
    }
    removed
}
