//! The planner's messages, each with its location and hint: those about addresses and prefixes
//! (both families) and those about services, OSPFv3 and the trainer's files. Rendering reports
//! nothing, so these are all the problems a topology can have past its shape.

use v6lab_core::plan_source;

/// Every problem of `yaml` as `LINE:COL message (hint)`, in order.
fn problems(yaml: &str) -> Vec<String> {
    match plan_source("t.yaml", yaml.as_bytes()) {
        Ok(_) => Vec::new(),
        Err((_, d)) => d
            .items
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} ({})",
                    d.loc.line,
                    d.loc.column,
                    d.message,
                    d.hint.as_deref().unwrap_or("")
                )
            })
            .collect(),
    }
}

#[track_caller]
fn assert_problems(yaml: &str, expected: &[&str]) {
    assert_eq!(problems(yaml), expected, "{yaml}");
}

const SEGMENTS: &str = "name: t
segments:
  v6: ipv6-only
  v4: ipv4-only
  ds: dual-stack
  quiet: {family: dual-stack, ra: none}
";

#[test]
fn interface_addresses_of_both_families() {
    let yaml = format!(
        "{SEGMENTS}nodes:
  h1:
    role: host
    interfaces:
      eth1: {{segment: v6, ipv4: 192.0.2.10/24}}
      eth2: {{segment: v4, ipv6: slaac}}
      eth3: {{segment: ds, ipv6: 192.0.2.7, ipv4: 2001:db8::7}}
      eth4: {{segment: ds, ipv6: dhcp, ipv4: slaac}}
      eth5: {{segment: ds, ipv6: 2001:db8:ffff::1, ipv4: 203.0.113.9/24}}
      eth6: {{segment: quiet, ipv6: dhcpv6, ipv4: none}}
      eth7: {{segment: v6, ipv6: none, ipv4: none}}
"
    );
    assert_problems(
        &yaml,
        &[
            "11:33 segment `v6` is ipv6-only; it has no IPv4 (remove `ipv4:` here, or make the segment `dual-stack`)",
            "12:33 segment `v4` is ipv4-only; it has no IPv6 (remove `ipv6:` here, or make the segment `dual-stack`)",
            "13:33 `192.0.2.7` is an IPv4 address given as `ipv6:` (write it under `ipv4:`)",
            "13:50 `2001:db8::7` is an IPv6 address given as `ipv4:` (write it under `ipv6:`)",
            "14:33 `dhcp` is not an IPv6 address mode (use `auto`, `slaac`, `dhcpv6`, `none`, or an address such as `2001:db8:1::10`)",
            "14:45 `slaac` is not an IPv4 address mode (use `auto`, `dhcp`, `none`, or an address such as `192.0.2.10/24`)",
            "15:33 2001:db8:ffff::1 is outside segment `ds`'s prefix 2001:db8:2::/64 (use an address inside 2001:db8:2::/64)",
            "15:57 203.0.113.9 is outside segment `ds`'s prefix 198.51.100.0/24 (use an address inside 198.51.100.0/24)",
            "16:36 `dhcpv6` needs a router sending Router Advertisements on segment `quiet` (add a router to the segment, set its `ra:`, or give a static address)",
        ],
    );
}

#[test]
fn automatic_addresses_skip_those_written_out() {
    let yaml = format!(
        "{SEGMENTS}nodes:
  s1: {{role: server, interfaces: {{eth1: ds}}}}
  s2:
    role: server
    interfaces:
      eth1: {{segment: ds, ipv6: 2001:db8:2::2, ipv4: 198.51.100.2/24}}
  s3: {{role: server, interfaces: {{eth1: ds}}}}
"
    );
    let (_, plan) = plan_source("t.yaml", yaml.as_bytes()).unwrap();
    let addrs: Vec<String> = plan
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.first_v6().unwrap(), n.first_v4().unwrap()))
        .collect();
    assert_eq!(
        addrs,
        [
            "2001:db8:2::1 198.51.100.1",
            "2001:db8:2::2 198.51.100.2",
            "2001:db8:2::3 198.51.100.3"
        ]
    );
}

#[test]
fn segment_prefixes_of_both_families() {
    let yaml = "name: t
segments:
  a: {family: ipv4-only, ipv6: 2001:db8:1::/64}
  b: {family: ipv6-only, ipv4: 192.0.2.0/24}
  c: {family: dual-stack, ipv6: 2001:db8:1::1/64, ipv4: 192.0.2.1/24}
  d: {family: dual-stack, ipv6: 2001:db8::/60, ipv4: 192.0.2.0/30}
  e: {family: dual-stack, ipv6: 2001:db8:5:/64, ipv4: 192.0.2/24}
  f: {family: dual-stack, ipv6: 2001:db8:6::/60, ra: none}
nodes:
  r1: {role: router, interfaces: {eth1: f}}
";
    assert_problems(
        yaml,
        &[
            "3:32 segment `a` is ipv4-only but has an IPv6 prefix (remove `ipv6:` or make the segment `dual-stack`)",
            "4:32 segment `b` is ipv6-only but has an IPv4 prefix (remove `ipv4:` or make the segment `dual-stack`)",
            "5:33 `2001:db8:1::1/64` has host bits set (write the network: `2001:db8:1::/64`)",
            "5:57 `192.0.2.1/24` has host bits set (write the network: `192.0.2.0/24`)",
            "6:33 `2001:db8::/60` is a /60; SLAAC and DHCPv6 segments need a /64 (use a /64, or set `ra: none` for a segment with static addresses only)",
            "6:54 `192.0.2.0/30` is too small for a segment (use a /24 or at least a /29)",
            "7:33 `2001:db8:5:/64` is not an IPv6 prefix (write e.g. `2001:db8:1::/64`)",
            "7:55 `192.0.2/24` is not an IPv4 prefix (write e.g. `198.51.100.0/24`)",
        ],
    );
}

#[test]
fn services_routing_and_files_are_checked_by_the_planner() {
    let yaml = "name: t
segments:
  lan: dual-stack
nodes:
  r1:
    role: router
    interfaces: {eth1: lan}
    ospf6: {area: backbone, router-id: one, interfaces: [eth1, eth9]}
  dns1:
    role: dns
    interfaces: {eth1: lan}
    services:
      resolver: {dns64: true}
      dns:
        zones:
          lab.example:
            www: nowhere
            mail: {a: [2001:db8::25], aaaa: [192.0.2.25]}
    files:
      - {path: etc/motd, mode: \"0999\", content: hi}
";
    assert_problems(
        yaml,
        &[
            "8:19 `backbone` is not an OSPF area (write e.g. `0.0.0.0` or `0`)",
            "8:40 the router ID must look like an IPv4 address (write e.g. `0.0.0.1`)",
            "8:64 `r1` has no IPv6 interface `eth9` (interfaces of `r1`: eth1)",
            "9:3 node `dns1` runs both `dns` and `resolver` (put the authoritative zones and the resolver on two nodes)",
            "9:3 `dns1` asks for DNS64 but the lab has no `nat64:` section (add a `nat64:` section naming the translator)",
            "17:18 `nowhere` is neither an address nor a node (write a node name or an address)",
            "18:24 2001:db8::25 is the wrong family for this record (A records take IPv4 addresses, AAAA records IPv6)",
            "18:46 192.0.2.25 is the wrong family for this record (A records take IPv4 addresses, AAAA records IPv6)",
            "20:16 `etc/motd` is not an absolute path (write a path such as `/etc/motd`)",
            "20:32 `0999` is not an octal file mode (write e.g. `\"0644\"` or `\"0755\"`)",
        ],
    );
}
