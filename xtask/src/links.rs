//! Every relative link in the repository's Markdown leads to a file of the repository.
//!
//! A reader of this project has a clone and nothing else: a link to a file that was never
//! committed, that moved, or that lives beside the repository on the author's machine
//! (`../shared/...`) is a dead end for them. The test here reads every Markdown file git tracks
//! (`git ls-files '*.md'`), finds its links and checks each relative one: it must resolve,
//! from the directory of the file it is in, to a file or directory git tracks, without leaving
//! the repository on the way (`../` above the root). So `cargo test --workspace` fails on the
//! commit that breaks a link, not when a reader finds it.
//!
//! What counts as a link: inline links and images (`[text](target)`, `![alt](target)`, with or
//! without `<...>` around the target and a title after it), reference definitions
//! (`[label]: target`) and `href="..."` / `src="..."` in inline HTML. Code spans and fenced code
//! blocks are text, not links, and are skipped. Links to `http://`, `https://` and `mailto:` are
//! outside this check (checking them needs the network); so are pure `#anchor` links. A
//! `path#anchor` link is checked by its path: anchors are made from headings by each renderer's
//! own rules, so only the file is something a clone can be held to. A link with any other scheme
//! (`file:`) or an absolute path (`/x`) is refused: neither means anything in someone else's
//! clone.
//!
//! The scanner is a few dozen lines instead of a Markdown parser crate: Markdown's link syntax,
//! as this repository writes it, is small, and the unit tests below pin each form it handles.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

/// A link found in a Markdown file: its 1-based line and its target as written.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// The links of one Markdown text, in order.
fn links(markdown: &str) -> Vec<Link> {
    let mut found = Vec::new();
    // The fence that opened the code block we are in: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for (index, raw) in markdown.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start();
        if let Some(open) = fence {
            if closes_fence(trimmed, open) {
                fence = None;
            }
            continue;
        }
        if let Some(open) = opens_fence(trimmed) {
            fence = Some(open);
            continue;
        }
        let text = without_code_spans(raw);
        if let Some(target) = reference_definition(&text) {
            found.push(Link { line, target });
        }
        for target in inline_targets(&text).into_iter().chain(html_targets(&text)) {
            found.push(Link { line, target });
        }
    }
    found
}

/// A line that opens a fenced code block (three or more backticks or tildes).
fn opens_fence(trimmed: &str) -> Option<(char, usize)> {
    let first = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run = trimmed.chars().take_while(|c| *c == first).count();
    (run >= 3).then_some((first, run))
}

/// A line that closes the block `open` opened: the same character, at least as many, nothing else.
fn closes_fence(trimmed: &str, (ch, len): (char, usize)) -> bool {
    let run = trimmed.chars().take_while(|c| *c == ch).count();
    run >= len && trimmed[run * ch.len_utf8()..].trim().is_empty()
}

/// The line with every code span's content blanked out: `` `[a](b)` `` is text, not a link. A
/// run of backticks without a closing run of the same length stays as it is (CommonMark).
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let closing = (i + run..chars.len()).find(|&j| {
            chars[j] == '`'
                && (j == 0 || chars[j - 1] != '`')
                && chars[j..].iter().take_while(|c| **c == '`').count() == run
        });
        match closing {
            Some(j) => {
                out.extend(std::iter::repeat_n(' ', j + run - i));
                i = j + run;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// `[label]: target` at the start of a line (up to three spaces in). Not a footnote (`[^1]:`).
fn reference_definition(text: &str) -> Option<String> {
    let indent = text.len() - text.trim_start_matches(' ').len();
    let rest = text[indent..].strip_prefix('[').filter(|_| indent <= 3)?;
    let (label, after) = rest.split_once("]:")?;
    if label.is_empty() || label.starts_with('^') || label.contains(['[', ']']) {
        return None;
    }
    destination(after)
}

/// The targets of the inline links and images on a line: whatever follows each `](`.
fn inline_targets(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(at, _)| destination(&text[at + 2..]))
        .collect()
}

/// The values of `href="..."` and `src="..."` attributes on a line.
fn html_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in text.match_indices(attribute) {
            let value = &text[at + attribute.len()..];
            if let Some(end) = value.find('"') {
                targets.push(value[..end].to_owned());
            }
        }
    }
    targets
}

/// A link destination at the start of `rest` (after optional spaces): `<...>`, or everything up
/// to a space or the `)` that closes the link, parentheses inside it balanced.
fn destination(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        return inner.find('>').map(|end| inner[..end].to_owned());
    }
    let mut depth = 0usize;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = i;
                break;
            }
            ')' => depth -= 1,
            c if c.is_whitespace() => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let target = &rest[..end];
    (!target.is_empty()).then(|| target.to_owned())
}

/// What git tracks: every file, and every directory that holds one (the root is `""`).
struct Tracked {
    files: HashSet<String>,
    dirs: HashSet<String>,
}

impl Tracked {
    fn new<'a>(files: impl IntoIterator<Item = &'a str>) -> Self {
        let files: HashSet<String> = files.into_iter().map(str::to_owned).collect();
        let mut dirs = HashSet::from([String::new()]);
        for file in &files {
            let mut dir = file.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                dir = parent;
            }
        }
        Tracked { files, dirs }
    }

    fn has(&self, path: &str) -> bool {
        self.files.contains(path) || self.dirs.contains(path)
    }
}

/// Check one link `target` found in the Markdown file `file` (a path from the repository root,
/// `/`-separated). `Ok` for a link that leads into the repository or is outside this check;
/// otherwise why it does not.
fn check(file: &str, target: &str, tracked: &Tracked) -> Result<(), String> {
    let lower = target.to_ascii_lowercase();
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
        || target.starts_with('#')
    {
        return Ok(());
    }
    if let Some((scheme, _)) = target.split_once(':')
        && !scheme.is_empty()
        && !scheme.contains('/')
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(format!(
            "`{target}`: a `{scheme}:` link; only http(s) and mailto links may leave the repository"
        ));
    }
    if target.starts_with('/') {
        return Err(format!(
            "`{target}`: an absolute path means nothing in another clone; write it relative to {file}"
        ));
    }
    let path = target.split(['#', '?']).next().unwrap_or_default();
    let path = percent_decode(path);
    // `docs/` names a directory: a file of that name does not satisfy it.
    let wants_dir = path.ends_with('/');
    let mut resolved: Vec<&str> = file.split('/').collect();
    resolved.pop(); // the file's own name: links are relative to its directory
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(format!(
                        "`{target}` points outside the repository, which a clone does not have"
                    ));
                }
            }
            name => resolved.push(name),
        }
    }
    let resolved = resolved.join("/");
    let found = if wants_dir {
        tracked.dirs.contains(&resolved)
    } else {
        tracked.has(&resolved)
    };
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{target}`: no file or directory `{resolved}` is tracked by git"
        ))
    }
}

/// `%20` and the like, as a link may write them; anything malformed stays as written.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `git ls-files` at `root` with `pathspec`, as `/`-separated paths from the root.
fn git_ls_files(root: &Path, pathspec: &[&str]) -> Vec<String> {
    let output = Command::new("git")
        .args(["ls-files", "-z", "--"])
        .args(pathspec)
        .current_dir(root)
        .output()
        .expect("the link check needs git and a git checkout of the repository");
    assert!(
        output.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(markdown: &str) -> Vec<String> {
        links(markdown).into_iter().map(|l| l.target).collect()
    }

    #[test]
    fn every_relative_link_in_the_markdown_resolves_inside_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the repository root");
        let every_file = git_ls_files(root, &[]);
        // Tracked and still in the working tree (a deleted file is not there for the reader).
        let present = every_file.iter().filter(|f| root.join(f).exists());
        let tracked = Tracked::new(present.map(String::as_str));
        let markdown = git_ls_files(root, &["*.md"]);
        assert!(
            markdown.iter().any(|f| f == "README.md"),
            "git ls-files found no README.md under {}",
            root.display()
        );
        let mut broken = Vec::new();
        let mut checked = 0;
        for file in &markdown {
            let text = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
            for link in links(&text) {
                checked += 1;
                if let Err(why) = check(file, &link.target, &tracked) {
                    broken.push(format!("{file}:{}: {why}", link.line));
                }
            }
        }
        assert!(
            broken.is_empty(),
            "{} of {checked} links in {} Markdown files are broken:\n{}",
            broken.len(),
            markdown.len(),
            broken.join("\n")
        );
    }

    #[test]
    fn inline_links_images_and_reference_definitions_are_found() {
        let text = "See [the API](docs/API.md) and ![plot](a/b.svg \"title\").\n\
                    [two](x.md)[links](<y z.md>) on a line; [p](a_(b).md).\n\
                    [label]: ref.md\n\
                    [^1]: a footnote, not a link\n\
                    <a href=\"page.html\"><img src=\"pic.png\"></a>\n";
        assert_eq!(
            targets(text),
            [
                "docs/API.md",
                "a/b.svg",
                "x.md",
                "y z.md",
                "a_(b).md",
                "ref.md",
                "page.html",
                "pic.png"
            ]
        );
        assert_eq!(links(text)[5].line, 3);
    }

    #[test]
    fn code_is_not_a_link() {
        let text = "Run `[a](gone.md)` or ``x `[b](gone.md)` y``.\n\
                    ```sh\n\
                    echo [c](gone.md)\n\
                    ````\n\
                    [after](here.md) and a lone ` backtick [d](also.md)\n";
        assert_eq!(targets(text), ["here.md", "also.md"]);
    }

    #[test]
    fn a_tilde_fence_ends_only_at_a_tilde_fence() {
        let text = "~~~\n```\n[in](gone.md)\n~~~\n[out](here.md)\n";
        assert_eq!(targets(text), ["here.md"]);
    }

    #[test]
    fn links_resolve_from_their_own_file_and_must_be_tracked() {
        let tracked = Tracked::new(["README.md", "docs/API.md", "loadtest/k6/README.md"]);
        for ok in [
            "docs/API.md",
            "./docs/API.md#errors",
            "docs/API.md?plain=1",
            "docs/",
            "docs",
            "loadtest/k6",
            "#anchor",
            "https://www.rfc-editor.org/rfc/rfc9700",
            "HTTP://example.com",
            "mailto:someone@example.com",
        ] {
            assert_eq!(check("README.md", ok, &tracked), Ok(()), "{ok}");
        }
        assert_eq!(check("docs/API.md", "../README.md", &tracked), Ok(()));
        assert_eq!(
            check("loadtest/k6/README.md", "../../docs/API.md", &tracked),
            Ok(())
        );
        assert_eq!(check("docs/API.md", "API.md#tokens", &tracked), Ok(()));
        for bad in ["docs/APIs.md", "API.md", "docs/API.md/", "target/x.md"] {
            let why = check("README.md", bad, &tracked).unwrap_err();
            assert!(why.contains("tracked by git"), "{bad}: {why}");
        }
    }

    #[test]
    fn links_out_of_the_repository_are_refused() {
        let tracked = Tracked::new(["README.md", "docs/API.md"]);
        for bad in [
            "../shared/API.md",
            "../shared/CONCEPTS.md#table",
            "docs/../../shared/API.md",
        ] {
            let why = check("README.md", bad, &tracked).unwrap_err();
            assert!(why.contains("outside the repository"), "{bad}: {why}");
        }
        let why = check("docs/API.md", "../../x.md", &tracked).unwrap_err();
        assert!(why.contains("outside the repository"), "{why}");
        let why = check("README.md", "/work/shared/API.md", &tracked).unwrap_err();
        assert!(why.contains("absolute path"), "{why}");
        let why = check("README.md", "file:///etc/passwd", &tracked).unwrap_err();
        assert!(why.contains("`file:` link"), "{why}");
    }

    #[test]
    fn percent_escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(percent_decode("a%20b.md"), "a b.md");
        assert_eq!(percent_decode("100%.md"), "100%.md");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let tracked = Tracked::new(["my notes.md"]);
        assert_eq!(check("README.md", "my%20notes.md", &tracked), Ok(()));
    }
}
