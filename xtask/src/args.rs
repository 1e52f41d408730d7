//! Reading the commands' few flags: `--flag value` and `--flag=value` alike.
//!
//! Written by hand rather than with a parser crate, which would cost more build time than these
//! few flags are worth; `up` and `fuzz` share this one reader.

use anyhow::Context;

/// The arguments of one command, read flag by flag.
pub struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
}

/// One argument: `--name`, `--name=value` or a plain word.
pub struct Flag<'a> {
    /// The argument as given.
    pub raw: &'a str,
    /// The part before any `=`.
    pub name: &'a str,
    inline: Option<&'a str>,
}

impl Flag<'_> {
    /// Whether a value came with the flag itself (`--name=value`).
    pub fn has_inline_value(&self) -> bool {
        self.inline.is_some()
    }
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Flags { args: args.iter() }
    }

    pub fn next_flag(&mut self) -> Option<Flag<'a>> {
        let raw = self.args.next()?.as_str();
        let (name, inline) = match raw.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (raw, None),
        };
        Some(Flag { raw, name, inline })
    }

    /// The value of `flag`: the part after `=`, or else the next argument.
    pub fn value(&mut self, flag: &Flag<'_>) -> anyhow::Result<String> {
        flag.inline
            .map(str::to_owned)
            .or_else(|| self.args.next().cloned())
            .with_context(|| format!("{} needs a value", flag.name))
    }
}
