//! `dime-control purge`: sends one purge to control's API and reports the edges' acknowledgements, through
//! Dime's one HTTP client ([`dime_client::Control`], trusting the CA given for `https://`).

use std::path::Path;
use std::time::Duration;

use dime_client::{CallError, Control, ControlUrl, Trust, TrustError};
use dime_routes::purge::{Prefix, Purge};
use dime_routes::wire::PurgeStatus;

/// Why the purge was not sent, or not taken.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--prefix `{0}`: expected HOST/PATH, e.g. video.example.com/hls/")]
    Prefix(String),
    #[error("--control {0}")]
    Url(dime_routes::Invalid),
    #[error("--control {0}: https needs the CA that signed control's certificate (--ca FILE)")]
    NoCa(String),
    #[error("--ca {0}")]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Token(#[from] dime_routes::TokenFileError),
    #[error("{0}")]
    Purge(String),
    #[error("{url}: {why}")]
    Runtime { url: String, why: String },
    #[error("control did not take the purge: {0}")]
    Call(#[from] CallError),
}

/// The purge the flags name.
pub fn purge_of(urls: Vec<String>, prefixes: &[String], tags: Vec<String>, soft: bool) -> Result<Purge, CliError> {
    let prefixes = prefixes
        .iter()
        .map(|p| match p.find('/') {
            Some(i) if i > 0 => Ok(Prefix { host: p[..i].to_owned(), prefix: p[i..].to_owned() }),
            _ => Err(CliError::Prefix(p.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let purge = Purge { urls, prefixes, tags, soft };
    purge.check().map_err(|errors| CliError::Purge(errors.join("; ")))?;
    Ok(purge)
}

/// Sends `purge` to `control` (`POST /v1/purge?wait=`) with the first token of `token_file`.
pub async fn send(
    control: &str,
    token_file: &Path,
    ca: Option<&Path>,
    purge: &Purge,
    wait: Duration,
) -> Result<PurgeStatus, CliError> {
    let token = dime_routes::read_token_file(token_file)?.into_iter().next().unwrap_or_default();
    let url = ControlUrl::parse(control).map_err(CliError::Url)?;
    let trust = match (url.https, ca) {
        (false, _) => Trust::Nobody,
        (true, Some(ca)) => Trust::CaFile(ca),
        (true, None) => return Err(CliError::NoCa(control.to_owned())),
    };
    let control = Control::new(url, token, dime_client::http(trust)?);
    Ok(control.purge(purge, wait).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_make_a_purge_and_a_bad_one_is_named() {
        let p = purge_of(vec!["https://v.test/a".into()], &["v.test/hls/".into()], vec!["t".into()], true).unwrap();
        assert_eq!(p.prefixes, vec![Prefix { host: "v.test".into(), prefix: "/hls/".into() }]);
        assert!(matches!(purge_of(vec![], &["/hls/".into()], vec![], false), Err(CliError::Prefix(_))));
        assert!(purge_of(vec![], &[], vec![], false).unwrap_err().to_string().contains("an empty purge"));
    }

    #[test]
    fn a_prefix_is_taken_if_its_path_reads_and_named_if_not() {
        // Sent as written: each edge reads it as a request's path, `/premium/`.
        assert!(purge_of(vec![], &["v.test/public/../premium/".into()], vec![], false).is_ok());
        let refused = purge_of(vec![], &["v.test/ok/".into(), "v.test/public/..".into()], vec![], false);
        let why = refused.unwrap_err().to_string();
        assert!(why.contains("prefixes[1].prefix: `/public/..`: it ends in the dot segment"), "{why}");
        let why = purge_of(vec!["https://v.test/a%zz".into()], &[], vec![], false).unwrap_err().to_string();
        assert!(why.contains("urls[0]: `https://v.test/a%zz`: the path: bad percent-encoding"), "{why}");
    }
}
