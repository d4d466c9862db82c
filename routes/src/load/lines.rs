//! The line a field path was written on, found in the document's text.
//!
//! serde_yaml gives the line of the first error it meets, and a `serde_yaml::Value` keeps no lines at all. For
//! every later error (and for the Traefik checks, which run on typed values), the line is found by walking the
//! block-style text: a key is looked for among the lines at its mapping's indentation, and `[n]` is the n-th `-`
//! item of a sequence. A value written in flow style (`{ a: 1 }`, `[x, y]`) is one line, so what is inside it is
//! reported on that line. The walk stops at the deepest part of the path it found.

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Writes steps as serde_yaml and the validators do: `http.routes[2].cache`.
pub(crate) fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Reads a field path (`http.routes[2].cache`, or with the validators' ` (name)` after an item) into steps.
/// Keys that contain a dot cannot be told apart here; [`super::recover`] resolves those against the document.
pub(crate) fn parse(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let segment = segment.split(" (").next().unwrap_or(segment);
        let (key, mut rest) = segment.split_once('[').map_or((segment, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        while let Some((n, after)) = rest.split_once(']') {
            match n.parse() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => return steps,
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    steps
}

/// The 1-based line (within `text`) of the deepest part of `path` found, or `None` when not even its first key is.
pub(crate) fn line_of(text: &str, path: &str) -> Option<usize> {
    line_at(text, &parse(path))
}

/// [`line_of`] for steps.
pub(crate) fn line_at(text: &str, steps: &[Step]) -> Option<usize> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The current node's first line, and the indentation of the line that opened it (it ends before the next
    // line indented as much or less).
    let (mut from, mut parent) = (0usize, None::<usize>);
    let mut found = None;
    for step in steps {
        // The node's children are its content lines at the indentation of the first one.
        let mut child = None;
        let mut hit = None;
        let mut items = 0usize;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let body = line.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let here = line.len() - body.len();
            // A sequence may sit at its key's indentation (`routes:` then `- name: a`, as kubectl writes it).
            let dash = body == "-" || body.starts_with("- ");
            let indentless = matches!(step, Step::Index(_)) && dash;
            if parent.is_some_and(|p| here < p || (here == p && !indentless)) {
                break;
            }
            if *child.get_or_insert(here) != here {
                continue;
            }
            match step {
                Step::Key(key) => {
                    let named = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")];
                    if named.iter().any(|n| body.starts_with(n.as_str())) {
                        hit = Some((i, here));
                        break;
                    }
                }
                Step::Index(n) => {
                    if dash {
                        if items == *n {
                            hit = Some((i, here));
                            break;
                        }
                        items += 1;
                    }
                }
            }
        }
        let Some((i, here)) = hit else { break };
        found = Some(i + 1);
        if let Step::Index(_) = step {
            // The item's first key is on the dash's line: blank the dash so that it sits with the item's others.
            lines[i].replace_range(here..here + 1, " ");
            (from, parent) = (i, Some(here));
        } else {
            (from, parent) = (i + 1, Some(here));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_nested_keys() {
        let text = "http:\n  routers:\n    a:\n      rule: x\n      services: [x]\n  services:\n    a:\n      loadBalancer:\n        sticky: {}\n";
        assert_eq!(line_of(text, "http.services.a.loadBalancer.sticky"), Some(9), "not the router's `services`");
        assert_eq!(line_of(text, "http.routers.a.rule"), Some(4));
        assert_eq!(line_of(text, "http.routers.b"), Some(2), "the deepest key found");
        assert_eq!(line_of(text, "tcp"), None);
    }

    #[test]
    fn lines_of_sequence_items_block_and_flow() {
        let text = "\
version: 1
http:
  routes:
    # a comment
    - name: a
      upstream: o
    - name: b
      match:
        - hosts: [b.test]
          paths: [/x]
      upstream: o
    - { name: c, upstream: o }
  upstreams:
    o: { servers: [{ url: x }] }
";
        assert_eq!(line_of(text, "http.routes[0]"), Some(5));
        assert_eq!(line_of(text, "http.routes[0].upstream"), Some(6));
        assert_eq!(line_of(text, "http.routes[1].name"), Some(7), "the first key, on the dash's line");
        assert_eq!(line_of(text, "http.routes[1].match[0].paths"), Some(10));
        assert_eq!(line_of(text, "http.routes[1] (b).upstream"), Some(11), "the validators' names are skipped");
        assert_eq!(line_of(text, "http.routes[2].upstream"), Some(12), "inside a flow mapping: its line");
        assert_eq!(line_of(text, "http.upstreams.o.servers[0].url"), Some(14));
        assert_eq!(line_of(text, "http.routes[7]"), Some(3), "no such item: the sequence's line");
        let indentless = "http:\n  routes:\n  - name: a\n  - name: b\n    upstream: o\n  upstreams: {}\n";
        assert_eq!(line_of(indentless, "http.routes[1].upstream"), Some(5));
        assert_eq!(line_of(indentless, "http.upstreams"), Some(6));
    }

    #[test]
    fn paths_render_back_as_written() {
        for path in ["http.routes[2].match[0].hosts", "version", "tcp.upstreams.o.servers[1]"] {
            assert_eq!(render(&parse(path)), path);
        }
        assert_eq!(parse("a[1][2]"), [Step::Key("a".into()), Step::Index(1), Step::Index(2)]);
    }
}
