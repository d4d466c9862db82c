#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use kube::api::ObjectMeta;

use super::*;

fn secret(name: &str, label: Option<&str>, hash: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("dime-system".into()),
            labels: label.map(|l| BTreeMap::from([(LABEL.to_owned(), l.to_owned())])),
            ..Default::default()
        },
        data: hash.map(|h| BTreeMap::from([(HASH_KEY.to_owned(), ByteString(h.as_bytes().to_vec()))])),
        ..Default::default()
    }
}

#[test]
fn a_token_is_its_edges_and_no_one_elses() {
    let (a, b) = (hex(&hash("token-a")), hex(&hash("token-b")));
    let rotated = hex(&hash("token-a-next"));
    let secrets = [
        secret("cred-a", Some("edge-a"), Some(&a)),
        secret("cred-a-next", Some("edge-a"), Some(&rotated)),
        secret("cred-b", Some("edge-b"), Some(&b.to_ascii_uppercase())),
    ];
    let credentials = Credentials::default();
    assert_eq!(credentials.lookup("token-a"), Lookup::NotLoaded, "before the first list");
    credentials.set(compile(&secrets));
    assert_eq!(credentials.lookup("token-a"), Lookup::Edge("edge-a".into()));
    assert_eq!(credentials.lookup("token-a-next"), Lookup::Edge("edge-a".into()), "two tokens while rotating");
    assert_eq!(credentials.lookup("token-b"), Lookup::Edge("edge-b".into()));
    assert_eq!(credentials.lookup("token-c"), Lookup::Unknown);
    assert_eq!(credentials.edges(), 2);
}

#[test]
fn a_secret_that_cannot_be_used_is_left_out_and_says_why() {
    let good = hex(&hash("t"));
    let cases = [
        (
            secret("s", Some("EDGE-A"), Some(&good)),
            "label dime.dev/edge-credential `EDGE-A`: an edge name is a DNS-1123 label",
        ),
        (secret("s", Some("edge_a"), Some(&good)), "`edge_a`"),
        (secret("s", None, Some(&good)), "label dime.dev/edge-credential ``"),
        (secret("s", Some("edge-a"), None), "no `token-sha256` key"),
        (secret("s", Some("edge-a"), Some("abc")), "not 64 hex digits"),
        (secret("s", Some("edge-a"), Some(&"g".repeat(64))), "not 64 hex digits"),
    ];
    for (s, want) in cases {
        let err = read(&s).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should say {want}");
        assert!(compile([&s]).is_empty());
    }
}

#[test]
fn one_token_given_to_two_edges_is_nobodys() {
    let same = hex(&hash("shared"));
    let secrets = [secret("x", Some("edge-a"), Some(&same)), secret("y", Some("edge-b"), Some(&same))];
    assert!(compile(&secrets).is_empty());
}

#[test]
fn an_issued_credential_is_a_secret_control_reads_back() {
    let (token, yaml) = issue("edge-a", "dime-system", [7; 32]);
    assert_eq!(token.len(), 43, "256 bits, base64url without padding");
    let secret: Secret = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(read(&secret).unwrap(), ("edge-a".to_owned(), hash(&token)));
    let name = secret.metadata.name.unwrap();
    assert_eq!(name, format!("dime-edge-credential-edge-a-{}", &hex(&hash(&token))[..8]), "one Secret per token");
}
