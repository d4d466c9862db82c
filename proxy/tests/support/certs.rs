//! Test certificates minted with the real openssl CLI: a CA, and leaf certificates it signs. Shared by the edge's
//! and control's tests (control includes this file by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed CA `ca.crt`/`ca.key` in `dir`, unless there already is one.
pub fn ca(dir: &Path, ca: &str) {
    if dir.join(format!("{ca}.crt")).exists() {
        return;
    }
    let (key, crt, subj) = (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN=Dime test CA {ca}"));
    openssl(
        dir,
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj],
    );
}

/// `name.crt`/`name.key` signed by CA `ca` (made if missing), for the subject alternative names given
/// (`DNS:a.test`, `IP:127.0.0.1`; the first one's value is the CN). Key and certificate are renamed into place,
/// as deploy tools replace them.
pub fn issue_by(dir: &Path, ca_name: &str, name: &str, sans: &[&str], serial: &str) {
    ca(dir, ca_name);
    std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName={}\n", sans.join(","))).unwrap();
    let cn = sans[0].split_once(':').map_or(sans[0], |(_, v)| v);
    let (key_new, csr, crt_new) = (format!("{name}.key.new"), format!("{name}.csr"), format!("{name}.crt.new"));
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key_new, "-out", &csr, "-subj", &format!("/CN={cn}")],
    );
    let (ca_crt, ca_key, ext) = (format!("{ca_name}.crt"), format!("{ca_name}.key"), format!("{name}.ext"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-set_serial",
            serial,
            "-days",
            "1",
            "-out",
            &crt_new,
            "-extfile",
            &ext,
        ],
    );
    std::fs::rename(dir.join(key_new), dir.join(format!("{name}.key"))).unwrap();
    std::fs::rename(dir.join(crt_new), dir.join(format!("{name}.crt"))).unwrap();
}

/// [`issue_by`] CA `ca` for DNS names.
pub fn issue(dir: &Path, name: &str, dns: &[&str], serial: &str) {
    let sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
    let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    issue_by(dir, "ca", name, &sans, serial);
}

/// The serial number of the certificate the edge presents for `sni`, via openssl s_client.
pub fn served_serial(port: u16, sni: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
