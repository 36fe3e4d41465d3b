//! The argument lists `COMMAND DOCS` reports, written compactly in each table entry's `args`
//! string and parsed here into Redis 7's argument maps (name, type, display_text,
//! key_spec_index, token, since, flags, nested arguments).
//!
//! Grammar (arguments separated by spaces):
//! `name:type[?][*][+][~display][=token][#key_spec_index][@since][(child child ...)]`, where
//! `?` = optional, `*` = multiple, `+` = multiple_token, and a display text or token that is
//! not a plain word is written in single quotes (`='~'`). Types are Redis's: `key`, `string`,
//! `integer`, `double`, `pattern`, `unix-time`, `pure-token`, `oneof`, `block`.

use crate::Reply;

/// One documented argument.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocArg<'a> {
    pub name: &'a str,
    pub type_: &'a str,
    pub display: Option<&'a str>,
    pub token: Option<&'a str>,
    pub key_spec_index: Option<i64>,
    pub since: Option<&'a str>,
    pub optional: bool,
    pub multiple: bool,
    pub multiple_token: bool,
    pub args: Vec<DocArg<'a>>,
}

const TYPES: &[&str] = &[
    "key",
    "string",
    "integer",
    "double",
    "pattern",
    "unix-time",
    "pure-token",
    "oneof",
    "block",
];

/// Parses an `args` string; `None` if it does not follow the grammar.
pub fn parse(s: &str) -> Option<Vec<DocArg<'_>>> {
    let mut p = Parser { s, i: 0 };
    let args = p.list()?;
    (p.i == s.len()).then_some(args)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_.-|".contains(&c)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn word(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(word_char) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// A plain word or a single-quoted text.
    fn text(&mut self) -> Option<&'a str> {
        if !self.eat(b'\'') {
            return self.word();
        }
        let start = self.i;
        let len = self.s[start..].find('\'')?;
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }

    /// Arguments up to the end or a closing parenthesis.
    fn list(&mut self) -> Option<Vec<DocArg<'a>>> {
        let mut args = Vec::new();
        while self.peek().is_some_and(|c| c != b')') {
            args.push(self.arg()?);
            if !self.eat(b' ') {
                break;
            }
        }
        Some(args)
    }

    fn arg(&mut self) -> Option<DocArg<'a>> {
        let name = self.word()?;
        if !self.eat(b':') {
            return None;
        }
        let type_ = self.word().filter(|t| TYPES.contains(t))?;
        let mut a = DocArg {
            name,
            type_,
            ..DocArg::default()
        };
        a.optional = self.eat(b'?');
        a.multiple = self.eat(b'*');
        a.multiple_token = self.eat(b'+');
        if self.eat(b'~') {
            a.display = Some(self.text()?);
        }
        if self.eat(b'=') {
            a.token = Some(self.text()?);
        }
        if self.eat(b'#') {
            a.key_spec_index = Some(self.word()?.parse().ok()?);
        }
        if self.eat(b'@') {
            a.since = Some(self.word()?);
        }
        if self.eat(b'(') {
            a.args = self.list()?;
            if !self.eat(b')') {
                return None;
            }
        }
        Some(a)
    }
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.to_string())
}

/// The arguments as Redis's `addReplyCommandArgList` shows them.
pub fn reply(args: &[DocArg<'_>]) -> Reply {
    Reply::Array(args.iter().map(arg_reply).collect())
}

fn arg_reply(a: &DocArg<'_>) -> Reply {
    let nested = matches!(a.type_, "oneof" | "block");
    let mut m = vec![(bulk("name"), bulk(a.name)), (bulk("type"), bulk(a.type_))];
    if !nested {
        m.push((bulk("display_text"), bulk(a.display.unwrap_or(a.name))));
    }
    if let Some(i) = a.key_spec_index {
        m.push((bulk("key_spec_index"), Reply::Int(i)));
    }
    if let Some(t) = a.token {
        m.push((bulk("token"), bulk(t)));
    }
    if let Some(s) = a.since {
        m.push((bulk("since"), bulk(s)));
    }
    let flags: Vec<Reply> = [
        (a.optional, "optional"),
        (a.multiple, "multiple"),
        (a.multiple_token, "multiple_token"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| Reply::Status(f.to_string()))
    .collect();
    if !flags.is_empty() {
        m.push((bulk("flags"), Reply::Set(flags)));
    }
    if nested {
        m.push((bulk("arguments"), reply(&a.args)));
    }
    Reply::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        let set = "key:key#0 value:string condition:oneof?@2.6.12(nx:pure-token=NX \
                   xx:pure-token=XX) get:pure-token?=GET@6.2.0";
        let args = parse(set).unwrap_or_default();
        assert_eq!(args.len(), 4);
        assert_eq!(args[0].key_spec_index, Some(0));
        assert_eq!(args[2].type_, "oneof");
        assert!(args[2].optional && !args[2].multiple);
        assert_eq!(args[2].since, Some("2.6.12"));
        assert_eq!(args[2].args[1].token, Some("XX"));
        assert_eq!(args[3].token, Some("GET"));
        let q = parse("t:pure-token?~'ip:port'='~' k:key*+=KEYS#1").unwrap_or_default();
        assert_eq!((q[0].display, q[0].token), (Some("ip:port"), Some("~")));
        assert!(q[1].multiple && q[1].multiple_token);
        assert_eq!(parse(""), Some(vec![]));
        for bad in [
            "k",
            "k:nosuch",
            "k:key(",
            "k:key#x",
            "k:key ='",
            "k:oneof(a:key",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn replies_in_redis_shape() {
        let args = parse("key:key#0 cond:oneof?(nx:pure-token=NX)").unwrap_or_default();
        let b = |s: &str| Reply::bulk(s.to_string());
        assert_eq!(
            reply(&args),
            Reply::Array(vec![
                Reply::Map(vec![
                    (b("name"), b("key")),
                    (b("type"), b("key")),
                    (b("display_text"), b("key")),
                    (b("key_spec_index"), Reply::Int(0)),
                ]),
                Reply::Map(vec![
                    (b("name"), b("cond")),
                    (b("type"), b("oneof")),
                    (
                        b("flags"),
                        Reply::Set(vec![Reply::Status("optional".into())])
                    ),
                    (
                        b("arguments"),
                        Reply::Array(vec![Reply::Map(vec![
                            (b("name"), b("nx")),
                            (b("type"), b("pure-token")),
                            (b("display_text"), b("nx")),
                            (b("token"), b("NX")),
                        ])])
                    ),
                ]),
            ])
        );
    }
}
