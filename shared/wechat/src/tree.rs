//! A small, strict reader of WeChat's XML into a tree of elements.
//!
//! WeChat's messages are flat `<xml>` envelopes with a few nested lists, so
//! a tree of (name, text, children) is all the typed layer needs. The
//! reader refuses any DTD (so no entity can be declared, let alone
//! expanded), bounds depth and element count, accepts text with or without
//! CDATA, and keeps text exactly as sent (no trimming).

use quick_xml::events::Event as XmlEvent;

use crate::WechatError;

/// Deeper than any WeChat message nests (subscribe-message lists: 3).
const MAX_DEPTH: usize = 16;
/// More elements than any WeChat message has; bounds work on hostile input.
const MAX_ELEMENTS: usize = 4096;

/// One element: its name, its own text (CDATA and text joined), its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of the child named `name`, empty when absent.
    pub fn string(&self, name: &str) -> String {
        self.text_of(name).unwrap_or_default().to_owned()
    }

    /// The text of the child named `name`, `None` when absent or empty.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.text_of(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// Parses `xml` whose root element must be `root`.
pub(crate) fn parse(xml: &str, root: &str) -> Result<Node, WechatError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut done: Option<Node> = None;
    let mut elements = 0usize;
    let malformed = |what: &str| WechatError::MalformedXml(what.to_owned());
    loop {
        let event = reader
            .read_event()
            .map_err(|e| WechatError::MalformedXml(short_reason(&e)))?;
        match event {
            XmlEvent::DocType(_) => return Err(WechatError::Dtd),
            XmlEvent::Start(_) | XmlEvent::Empty(_) if done.is_some() => {
                return Err(malformed("content after the root element"));
            }
            XmlEvent::Start(start) => {
                elements += 1;
                if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err(malformed("too deeply nested or too many elements"));
                }
                stack.push(Node {
                    name: name_of(start.name().as_ref())?,
                    ..Node::default()
                });
            }
            XmlEvent::Empty(start) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(malformed("too many elements"));
                }
                let node = Node {
                    name: name_of(start.name().as_ref())?,
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => done = Some(node),
                }
            }
            XmlEvent::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => done = Some(node),
                }
            }
            XmlEvent::Text(text) => {
                let unescaped = text
                    .unescape()
                    .map_err(|e| WechatError::MalformedXml(short_reason(&e)))?;
                match stack.last_mut() {
                    Some(node) => node.text.push_str(&unescaped),
                    None if unescaped.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            XmlEvent::CData(cdata) => {
                let node = stack
                    .last_mut()
                    .ok_or_else(|| malformed("CDATA outside the root element"))?;
                let raw = cdata.into_inner();
                let text = std::str::from_utf8(&raw).map_err(|_| WechatError::NotUtf8)?;
                node.text.push_str(text);
            }
            XmlEvent::Decl(_) | XmlEvent::Comment(_) | XmlEvent::PI(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unexpected end of document"));
    }
    let node = done.ok_or_else(|| malformed("no root element"))?;
    if node.name != root {
        return Err(WechatError::MalformedXml(format!(
            "the root element must be <{root}>"
        )));
    }
    Ok(node)
}

fn name_of(raw: &[u8]) -> Result<String, WechatError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| WechatError::NotUtf8)
}

/// The parser's complaint without quoting the document back.
fn short_reason(e: &quick_xml::Error) -> String {
    let mut s = e.to_string();
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_and_without_cdata_reads_the_same() {
        let a = parse(
            "<xml><A><![CDATA[你好 <b>]]></A><B>x &amp; y</B></xml>",
            "xml",
        )
        .expect("parse");
        assert_eq!(a.text_of("A"), Some("你好 <b>"));
        assert_eq!(a.text_of("B"), Some("x & y"));
    }

    #[test]
    fn nested_lists_keep_their_order() {
        let a = parse("<xml><L><i>1</i><i>2</i></L><E/></xml>", "xml").expect("parse");
        let items: Vec<_> = a
            .child("L")
            .expect("L")
            .children_named("i")
            .map(|n| n.text.clone())
            .collect();
        assert_eq!(items, ["1", "2"]);
        assert_eq!(a.text_of("E"), Some(""));
    }

    #[test]
    fn broken_documents_are_malformed_not_panics() {
        for bad in [
            "",
            "<xml>",
            "<xml><a></b></xml>",
            "<xml></xml><xml></xml>",
            "text<xml/>",
            "<other/>",
            "<xml><a>&unknown;</a></xml>",
            "<xml><a>&#xD800;</a></xml>",
        ] {
            assert!(
                matches!(parse(bad, "xml"), Err(WechatError::MalformedXml(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn any_doctype_is_refused() {
        let x = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"b\">]><xml><A>&a;</A></xml>";
        assert_eq!(parse(x, "xml"), Err(WechatError::Dtd));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(matches!(
            parse(&deep, "xml"),
            Err(WechatError::MalformedXml(_))
        ));
    }
}
