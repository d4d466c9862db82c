//! A static fleet of edges on loopback (`--peers`, one shared peer token): what each member runs with.

use std::net::SocketAddr;

use super::free_addr;

pub const PEER_TOKEN: &str = "fleet-peer-token-0123456789";

/// The members' names, peer listeners and peer token file.
pub struct Static {
    pub names: Vec<String>,
    pub peers: Vec<SocketAddr>,
    dir: tempfile::TempDir,
}

impl Static {
    /// `names` members (none for a lone edge: it runs with no fleet arguments).
    pub fn named(names: &[&str]) -> Static {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("peer-tokens"), format!("{PEER_TOKEN}\n")).unwrap();
        let peers = names.iter().map(|_| free_addr()).collect();
        Static { names: names.iter().map(|n| (*n).to_owned()).collect(), peers, dir }
    }

    /// `n` members named `e0`, `e1`...; a lone edge (`n` = 1) is no fleet.
    pub fn new(n: usize) -> Static {
        let names: Vec<String> = if n > 1 { (0..n).map(|i| format!("e{i}")).collect() } else { Vec::new() };
        Static::named(&names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// What member `i` runs with: its name, its peer listener, the member list and the peer token file.
    pub fn args(&self, i: usize) -> Vec<String> {
        if self.names.is_empty() {
            return Vec::new();
        }
        let list: Vec<String> = self.names.iter().zip(&self.peers).map(|(n, p)| format!("{n}=http://{p}")).collect();
        let token = self.dir.path().join("peer-tokens");
        [
            "--edge-name",
            &self.names[i],
            "--peer-listen",
            &self.peers[i].to_string(),
            "--peers",
            &list.join(","),
            "--peer-token-file",
            token.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}
