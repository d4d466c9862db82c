use super::*;
use proptest::prelude::*;

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let url = format!("http://10.0.{}.{}:8444", i / 200, i % 200 + 1);
            Member { name: format!("edge-{i}"), addr: peer_addr(&url).unwrap(), url, key: None }
        })
        .collect()
}

fn settings(me: &str, members: Vec<Member>) -> FleetSettings {
    FleetSettings {
        name: me.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: String::new(),
        members,
        token_file: None,
        timeout: Duration::from_millis(200),
    }
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("video.example.com\n/hls/stream-{}/seg-{i}.ts", i % 7)).collect()
}

#[test]
fn members_parse_and_bad_lists_are_refused_with_the_reason() {
    let m = Member::parse("edge-a=http://10.147.17.5:8444").unwrap();
    assert_eq!((m.name.as_str(), m.addr.to_string().as_str()), ("edge-a", "10.147.17.5:8444"));
    for bad in [
        "edge-a",
        "=http://1.2.3.4:1",
        "edge a=http://1.2.3.4:1",
        "a=https://1.2.3.4:1",
        "a=http://edge:80",
        "a=http://1.2.3.4",
    ] {
        assert!(Member::parse(bad).is_err(), "{bad}");
    }
    let list = |text: &str| text.split(',').map(Member::parse).collect::<Result<Vec<_>, _>>().unwrap();
    let two = list("a=http://10.0.0.1:1,b=http://10.0.0.2:1");
    assert!(check_members("a", "http://10.0.0.1:1", &two).is_ok());
    let err = check_members("c", "http://10.0.0.3:1", &two).unwrap_err().0;
    assert!(err.contains("`c`, is not in the list"), "{err}");
    let err = check_members("a", "http://10.0.0.9:1", &two).unwrap_err().0;
    assert!(err.contains("advertises http://10.0.0.9:1"), "{err}");
    let err = check_members("a", "http://10.0.0.1:1", &list("a=http://10.0.0.1:1,a=http://10.0.0.2:1")).unwrap_err().0;
    assert!(err.contains("`a` is listed twice"), "{err}");
    let err = check_members("a", "http://10.0.0.1:1", &list("a=http://10.0.0.1:1,b=http://10.0.0.1:1")).unwrap_err().0;
    assert!(err.contains("the same address"), "{err}");
}

#[test]
fn every_member_owns_a_share_of_the_keys() {
    let ring = Ring::new(members(4));
    let mut counts = HashMap::new();
    for k in keys(4000) {
        *counts.entry(ring.owner(k.as_bytes()).unwrap().name.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 4);
    for (name, n) in counts {
        assert!((600..=1400).contains(&n), "{name} owns {n} of 4000 keys");
    }
}

#[test]
fn candidates_list_every_member_once_owner_first() {
    let ring = Ring::new(members(5));
    for k in keys(50) {
        let order: Vec<&str> = ring.candidates(k.as_bytes()).map(|m| m.name.as_str()).collect();
        assert_eq!(order.len(), 5, "{order:?}");
        assert_eq!(order[0], ring.owner(k.as_bytes()).unwrap().name);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
    }
}

#[test]
fn a_key_goes_to_its_owner_or_past_failed_members_to_the_origin() {
    let all = members(3);
    let ring = Ring::new(all.clone());
    let key = keys(200).into_iter().find(|k| ring.owner(k.as_bytes()).unwrap().name == "edge-1").unwrap();
    let fleet = Fleet::new(&settings("edge-0", all.clone()), PeerAuth::Shared(vec!["t".repeat(16)]));
    let owner = fleet.ask_for(key.as_bytes(), &[], None).unwrap();
    assert_eq!(owner.name, "edge-1");
    // The owner failed for this request: the next on the ring, unless that is this edge (then the origin).
    let next: Vec<&str> = ring.candidates(key.as_bytes()).map(|m| m.name.as_str()).collect();
    let after = fleet.ask_for(key.as_bytes(), &[owner.addr], None).map(|m| m.name);
    if next[1] == "edge-0" {
        assert_eq!(after, None);
    } else {
        assert_eq!(after.as_deref(), Some(next[1]));
    }
    // On the owner itself the key is fetched from the origin.
    let on_owner = Fleet::new(&settings("edge-1", all.clone()), PeerAuth::Shared(vec![]));
    assert_eq!(on_owner.ask_for(key.as_bytes(), &[], None), None);
    // Ejected after three failures in a row, for every request; back after a success.
    for i in 0..3 {
        assert_eq!(fleet.record_failure(owner.addr), i == 2);
    }
    assert_ne!(fleet.ask_for(key.as_bytes(), &[], None).map(|m| m.name), Some("edge-1".to_owned()));
    fleet.record_success(owner.addr);
    assert_eq!(fleet.ask_for(key.as_bytes(), &[], None).map(|m| m.name), Some("edge-1".to_owned()));
    // A member that broke a response is ejected at once (once).
    assert!(fleet.eject(owner.addr));
    assert!(!fleet.eject(owner.addr));
    assert_ne!(fleet.ask_for(key.as_bytes(), &[], None).map(|m| m.name), Some("edge-1".to_owned()));
}

#[test]
fn members_from_control_always_include_this_edge_and_a_payload_splits() {
    let mut s = settings("edge-0", Vec::new());
    s.advertise = "http://10.0.0.1:8444".into();
    let fleet = Fleet::new(&s, PeerAuth::Shared(vec![]));
    let listed = |name: &str, url: &str| dime_routes::wire::Member { name: name.into(), url: url.into(), key: None };
    fleet.set_members(&[listed("edge-1", "http://10.0.0.2:8444"), listed("bad", "https://x:1")]);
    let names: Vec<String> = fleet.ring().members().iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["edge-0", "edge-1"]);
}

#[test]
fn a_shield_owns_every_key_of_its_route() {
    let all = members(4);
    let shield = vec!["edge-2".to_owned()];
    let fleet = Fleet::new(&settings("edge-0", all.clone()), PeerAuth::Shared(vec![]));
    for k in keys(40) {
        assert_eq!(fleet.ask_for(k.as_bytes(), &[], Some(&shield)).map(|m| m.name).as_deref(), Some("edge-2"));
    }
    // On the shield itself, and once the shield failed: the origin.
    let on_shield = Fleet::new(&settings("edge-2", all.clone()), PeerAuth::Shared(vec![]));
    assert_eq!(on_shield.ask_for(b"k", &[], Some(&shield)), None);
    assert_eq!(fleet.ask_for(b"k", &[all[2].addr], Some(&shield)), None);
}

fn peer_request<'a>(sender: &'a str, token: Option<&'a str>, proof: &'a [(&'static str, String)]) -> PeerRequest<'a> {
    let find = |name: &str| proof.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    PeerRequest {
        method: "GET",
        host: "video.test",
        target: "/hls/a.ts?x=1",
        sender: Some(sender),
        token: token.or_else(|| find(dime_routes::wire::PEER_TOKEN_HEADER)),
        time: find(dime_routes::wire::PEER_TIME_HEADER),
        signature: find(dime_routes::wire::PEER_SIGNATURE_HEADER),
    }
}

#[test]
fn a_static_fleet_checks_its_shared_tokens() {
    let tokens = vec!["new-peer-token-0123".into(), "old-peer-token-0123".into()];
    let fleet = Fleet::new(&settings("edge-0", members(2)), PeerAuth::Shared(tokens));
    let to = &members(2)[1];
    let proof = fleet.proof("GET", "video.test", "/", to, 0);
    assert_eq!(proof, [(dime_routes::wire::PEER_TOKEN_HEADER, "new-peer-token-0123".to_owned())]);
    assert_eq!(fleet.check(&peer_request("edge-1", Some("old-peer-token-0123"), &[]), 0), PeerCheck::Heard);
    assert!(matches!(fleet.check(&peer_request("edge-1", Some("old-peer-token-012"), &[]), 0), PeerCheck::Refused(_)));
    assert_eq!(fleet.check(&peer_request("edge-1", None, &[]), 0), PeerCheck::Missing);
}

/// Three edges of a fleet from control, each with its own key, each listing the others' public keys.
fn signed_fleet() -> Vec<Fleet> {
    let keys: Vec<identity::PeerKey> = (0..3).map(|_| identity::PeerKey::generate().unwrap()).collect();
    let listed: Vec<dime_routes::wire::Member> = (0..3)
        .map(|i| dime_routes::wire::Member {
            name: format!("edge-{i}"),
            url: format!("http://10.0.0.{}:8444", i + 1),
            key: Some(keys[i].public().to_owned()),
        })
        .collect();
    keys.into_iter()
        .enumerate()
        .map(|(i, key)| {
            let mut s = settings(&format!("edge-{i}"), Vec::new());
            s.advertise = format!("http://10.0.0.{}:8444", i + 1);
            let fleet = Fleet::new(&s, PeerAuth::Signed(key));
            fleet.set_members(&listed);
            fleet
        })
        .collect()
}

#[test]
fn a_member_proves_its_name_and_no_other() {
    let fleet = signed_fleet();
    let (a, b, c) = (&fleet[0], &fleet[1], &fleet[2]);
    let now = 1_800_000_000;
    let member = |f: &Fleet, name: &str| f.ring().members().iter().find(|m| m.name == name).unwrap().clone();
    let to_b = a.proof("GET", "video.test", "/hls/a.ts?x=1", &member(a, "edge-1"), now);
    assert!(to_b.iter().all(|(n, _)| *n != dime_routes::wire::PEER_TOKEN_HEADER), "no secret is sent: {to_b:?}");
    assert_eq!(b.check(&peer_request("edge-0", None, &to_b), now), PeerCheck::Heard);
    assert_eq!(b.check(&peer_request("edge-0", None, &to_b), now + 30), PeerCheck::Heard, "within the skew");

    let refused = |f: &Fleet, req: PeerRequest<'_>, at: u64, what: &str| {
        assert!(matches!(f.check(&req, at), PeerCheck::Refused(_)), "{what}: {:?}", f.check(&req, at));
    };
    // B, having received A's signed request, cannot pose as A: not to C (signed for B), not as itself.
    refused(c, peer_request("edge-0", None, &to_b), now, "A's request for B replayed to C");
    refused(b, peer_request("edge-2", None, &to_b), now, "A's signature under C's name");
    // C signs with its own key but claims to be A.
    let mut forged = c.proof("GET", "video.test", "/hls/a.ts?x=1", &member(c, "edge-1"), now);
    refused(b, peer_request("edge-0", None, &forged), now, "C's signature claiming to be A");
    // Another request, another time, or a stale one: not what was signed.
    let mut other = peer_request("edge-0", None, &to_b);
    other.target = "/premium/x.ts";
    refused(b, other, now, "a signature of another path");
    refused(b, peer_request("edge-0", None, &to_b), now + 31, "replayed past the skew");
    forged.retain(|(n, _)| *n != dime_routes::wire::PEER_TIME_HEADER);
    forged.push((dime_routes::wire::PEER_TIME_HEADER, "soon".into()));
    refused(b, peer_request("edge-2", None, &forged), now, "a time that is not one");
    refused(b, peer_request("edge-9", None, &to_b), now, "not a member");
    refused(b, peer_request("edge-1", None, &to_b), now, "itself");
    assert_eq!(b.check(&peer_request("edge-0", None, &[]), now), PeerCheck::Missing);
    // A shared token means nothing in a fleet from control.
    assert_eq!(b.check(&peer_request("edge-0", Some("any-token-at-all"), &[]), now), PeerCheck::Missing);
}

#[test]
fn a_member_listed_without_a_key_is_not_heard() {
    let fleet = signed_fleet();
    let listed = |i: usize, key: Option<String>| dime_routes::wire::Member {
        name: format!("edge-{i}"),
        url: format!("http://10.0.0.{}:8444", i + 1),
        key,
    };
    let b = &fleet[1];
    b.set_members(&[
        listed(0, None),
        listed(1, b.public_key().map(str::to_owned)),
        listed(2, Some("not-a-key".into())),
    ]);
    let a = &fleet[0];
    let b_member = a.ring().members().iter().find(|m| m.name == "edge-1").unwrap().clone();
    let proof = a.proof("GET", "video.test", "/hls/a.ts?x=1", &b_member, 5);
    assert!(matches!(b.check(&peer_request("edge-0", None, &proof), 5), PeerCheck::Refused(_)));
}

#[test]
fn the_key_pair_is_kept_across_restarts_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = identity::PeerKey::load_or_create(dir.path()).unwrap();
    let again = identity::PeerKey::load_or_create(dir.path()).unwrap();
    assert_eq!(first.public(), again.public());
    let mode = std::fs::metadata(dir.path().join(identity::KEY_FILE)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(dir.path().join(identity::KEY_FILE), b"garbage").unwrap();
    let err = identity::PeerKey::load_or_create(dir.path()).unwrap_err().to_string();
    assert!(err.contains("peer-key.pk8") && err.contains("not an Ed25519 key"), "{err}");
}

proptest! {
    /// Adding one member to N moves about 1/(N+1) of the keys, all of them to the new member.
    #[test]
    fn a_new_member_takes_about_its_share_and_only_that(n in 2usize..12) {
        let before = Ring::new(members(n));
        let after = Ring::new(members(n + 1));
        let keys = keys(3000);
        let mut moved = 0;
        for k in &keys {
            let (a, b) = (before.owner(k.as_bytes()).unwrap(), after.owner(k.as_bytes()).unwrap());
            if a != b {
                moved += 1;
                prop_assert_eq!(&b.name, &format!("edge-{n}"), "a key moved between two old members");
            }
        }
        let share = moved as f64 / keys.len() as f64;
        let ideal = 1.0 / (n + 1) as f64;
        prop_assert!(share > ideal * 0.5 && share < ideal * 1.6, "moved {share:.3}, ideal {ideal:.3}");
    }

    /// Every edge computes the same owner whatever order it was given the members in.
    #[test]
    fn rings_agree_whatever_the_order_of_members(n in 1usize..10, rotate in 0usize..10) {
        let mut shuffled = members(n);
        shuffled.rotate_left(rotate % n);
        shuffled.reverse();
        let (a, b) = (Ring::new(members(n)), Ring::new(shuffled));
        for k in keys(300) {
            prop_assert_eq!(a.owner(k.as_bytes()), b.owner(k.as_bytes()));
        }
    }
}
