use super::*;

#[test]
fn overrides_parse_host_port_and_addresses() {
    let mut o = Overrides::default();
    o.parse_entry("Video.Example.com:8080=127.0.0.1:9000,127.0.0.2:9000").unwrap();
    assert_eq!(o.0["video.example.com:8080"].len(), 2);
    for bad in ["nope", "a.com=1.2.3.4:1", "a.com:x=1.2.3.4:1", "a.com:80=1.2.3.4"] {
        assert!(Overrides::default().parse_entry(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn overrides_win_over_dns() {
    let mut overrides = Overrides::default();
    overrides.parse_entry("origin.invalid:80=127.0.0.9:1234").unwrap();
    let r = SystemResolver { overrides };
    assert_eq!(r.resolve("origin.invalid:80").await.unwrap(), vec!["127.0.0.9:1234".parse().unwrap()]);
    assert_eq!(r.resolve("127.0.0.1:81").await.unwrap(), vec!["127.0.0.1:81".parse().unwrap()]);
}
