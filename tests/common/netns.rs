//! A network namespace joined to the root namespace by a veth pair, so a test can put a
//! server on a real, non-loopback address (clients such as dockerd treat loopback
//! specially).
//!
//! Addresses come from TEST-NET-2, `198.51.100.0/24` (RFC 5737, never routed), or from a
//! part of a TEST-NET block a test names ([`NetNs::create_in`]): each namespace gets a
//! free `/30`, the root side `.1` of it and the namespace side `.2`.
//! Dropping the guard deletes the veth pair and the namespace, also after a panic.
//!
//! [`NetNs::create_client`] is the other way round: the server stays in the root
//! namespace and the namespace holds a *client*, which reaches the server at the root
//! side's address and is seen with the namespace side's address as its source. Its /30s
//! come from [`CLIENT_NETS`], the upper half of TEST-NET-2, and [`NetNs::create`]'s from
//! the lower half, so that the two kinds of tests never compete for blocks.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{require_root, require_tool};

/// The range the /30s of [`NetNs::create`] are taken from: the lower half of TEST-NET-2,
/// `198.51.100.0/25`.
pub const TEST_NET_2: Range = Range {
    prefix: [198, 51, 100],
    first: 0,
    blocks: 32,
};

/// The range of [`NetNs::create_client`]: the upper half of TEST-NET-2,
/// `198.51.100.128/25`.
pub const CLIENT_NETS: Range = Range {
    prefix: [198, 51, 100],
    first: 128,
    blocks: 32,
};

/// A run of /30 blocks within a /24: `prefix.first` up to `blocks` /30s further.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// The first three octets.
    pub prefix: [u8; 3],
    /// The last octet of the first block (a multiple of 4).
    pub first: u8,
    /// How many /30s the range holds.
    pub blocks: usize,
}

static INSTANCE: AtomicUsize = AtomicUsize::new(0);
/// Serialises picking a /30 and configuring it, within one test binary.
static SETUP: Mutex<()> = Mutex::new(());

/// A network namespace with a veth link to the root namespace. See the module docs.
pub struct NetNs {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    link_created: bool,
}

impl NetNs {
    /// Creates the namespace, the veth pair and their addresses; panics (after cleaning up
    /// what it made) when `ip` fails.
    pub fn create() -> NetNs {
        NetNs::create_in(TEST_NET_2)
    }

    /// Like [`NetNs::create`], with the /30 taken from `range` (so that test files can keep
    /// to their own addresses).
    pub fn create_in(range: Range) -> NetNs {
        NetNs::create_labelled(range, "test")
    }

    /// A namespace for a client of a server in the root namespace (see the module docs),
    /// on a /30 of [`CLIENT_NETS`]. `label` (e.g. `vlan`) goes into the namespace's name,
    /// so that a leftover is recognisable.
    pub fn create_client(label: &str) -> NetNs {
        NetNs::create_labelled(CLIENT_NETS, label)
    }

    fn create_labelled(range: Range, label: &str) -> NetNs {
        require_root("creating a network namespace");
        require_tool("ip");
        let _lock = SETUP.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        let n = INSTANCE.fetch_add(1, Ordering::SeqCst);
        let block = free_block(range, pid as usize + n);
        let [a, b, c] = range.prefix;
        let host_ip = Ipv4Addr::new(a, b, c, block + 1);
        let ns_ip = Ipv4Addr::new(a, b, c, block + 2);
        let name = format!("imgflow-{label}-{pid}-{n}");
        // Interface names are limited to 15 bytes.
        let tag = format!("imf{pid:x}{n}");
        let (host_if, ns_if) = (format!("{tag}h"), format!("{tag}n"));
        ip(&["netns", "add", &name]);
        let mut ns = NetNs {
            name,
            host_if,
            host_ip,
            ns_ip,
            link_created: false,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            &ns.name,
        ]);
        ns.link_created = true;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &ns.host_if]);
        ip(&["link", "set", &ns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", ns.name.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of the namespace's end of the link (where a server listens).
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// The address of the root namespace's end of the link (where clients come from).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The root namespace's interface name.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// `program` run inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(require_tool("ip"));
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Whether a namespace named `name` exists.
    pub fn exists(name: &str) -> bool {
        std::path::Path::new("/run/netns").join(name).exists()
    }

    /// Whether a network interface named `name` exists in the root namespace.
    pub fn link_exists(name: &str) -> bool {
        std::path::Path::new("/sys/class/net").join(name).exists()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.link_created {
            // Deleting one end deletes the pair.
            let _ = quiet_ip(&["link", "del", &self.host_if]);
        }
        let _ = quiet_ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip ARGS`; panics with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new(require_tool("ip"))
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS`, ignoring its output; true on success.
fn quiet_ip(args: &[&str]) -> bool {
    Command::new(require_tool("ip"))
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The last octet of the network address of a /30 in `range` that no address of the
/// root namespace falls in, trying blocks from `start` on (so concurrent test processes
/// tend to pick different ones).
fn free_block(range: Range, start: usize) -> u8 {
    let out = Command::new(require_tool("ip"))
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("running ip addr show");
    let listing = String::from_utf8_lossy(&out.stdout);
    let used: Vec<Ipv4Addr> = listing
        .split_whitespace()
        .filter_map(|w| w.split('/').next()?.parse().ok())
        .collect();
    (0..range.blocks)
        .map(|i| range.first + (((start + i) % range.blocks) * 4) as u8)
        .find(|&block| {
            !used.iter().any(|a| {
                let o = a.octets();
                o[..3] == range.prefix && o[3] & !3 == block
            })
        })
        .unwrap_or_else(|| panic!("every /30 of {range:?} is in use"))
}
