//! A small element tree built from quick-xml's events: what the responses are read from.
//!
//! Elements are named by their local name (`tds:XAddr` and `XAddr` are both `XAddr`): field
//! cameras disagree on prefixes and even namespaces, never on element names. Text is unescaped
//! and trimmed. The tree is bounded ([`DEPTH_MAX`], [`ELEMENTS_MAX`]): a camera's answer is a few
//! kilobytes, and a hostile one must not make the node build an unbounded tree.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::Error;

/// Deepest nesting read: SOAP envelope, body, response, and the few levels of a profile.
pub const DEPTH_MAX: usize = 32;
/// Most elements read from one answer: a camera with many profiles and presets is hundreds.
pub const ELEMENTS_MAX: usize = 20_000;

/// One element: its local name, attributes (local names too), text and children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element named `name` at any depth (this one included), depth first.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Every element named `name` at any depth, in document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        if self.name == name {
            out.push(self);
        }
        for child in &self.children {
            child.find_all(name, out);
        }
    }

    /// The text of the descendant reached by `path` (local names, one per level).
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let mut at = self;
        for name in path {
            at = at.child(name)?;
        }
        Some(at.text.as_str())
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_string(),
        None => name.into_owned(),
    }
}

/// Parses a whole document into its root element.
pub fn parse(text: &str) -> Result<Element, Error> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let bad = |e: &dyn std::fmt::Display| Error::Xml(e.to_string());
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                elements += 1;
                if elements > ELEMENTS_MAX || stack.len() >= DEPTH_MAX {
                    return Err(Error::Xml(format!(
                        "document too large (more than {ELEMENTS_MAX} elements or {DEPTH_MAX} levels)"
                    )));
                }
                let mut element = Element {
                    name: local(start.name().as_ref()),
                    ..Element::default()
                };
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| bad(&e))?;
                    let value = attribute
                        .unescape_value()
                        .map_err(|e| bad(&e))?
                        .into_owned();
                    element
                        .attributes
                        .push((local(attribute.key.as_ref()), value));
                }
                if empty {
                    close(&mut stack, &mut root, element)?;
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| Error::Xml("closing tag without an opening one".into()))?;
                close(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    let text = text.unescape().map_err(|e| bad(&e))?;
                    current.text.push_str(text.trim());
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(String::from_utf8_lossy(&data).trim());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(Error::Xml("document ends inside an element".into()));
    }
    root.ok_or_else(|| Error::Xml("empty document".into()))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) -> Result<(), Error> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(Error::Xml("more than one root element".into())),
    }
    Ok(())
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for element text and attribute values.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_by_local_name_with_text_and_attributes() {
        let doc = parse(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><a:R a:token="p&amp;1">
               <a:Uri> http://cam/x?a=1&amp;b=2 </a:Uri><Empty/></a:R></s:Body></s:Envelope>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "Envelope");
        let r = doc.find("R").unwrap();
        assert_eq!(r.attribute("token"), Some("p&1"));
        assert_eq!(r.text_at(&["Uri"]), Some("http://cam/x?a=1&b=2"));
        assert!(r.child("Empty").is_some());
    }

    #[test]
    fn malformed_and_hostile_documents_are_errors() {
        for bad in ["", "<a><b></a>", "<a>", "not xml at all <", "<a/><b/>"] {
            assert!(matches!(parse(bad), Err(Error::Xml(_))), "{bad:?}");
        }
        let deep = "<a>".repeat(DEPTH_MAX + 1) + &"</a>".repeat(DEPTH_MAX + 1);
        assert!(matches!(parse(&deep), Err(Error::Xml(_))));
        let wide = format!("<a>{}</a>", "<b/>".repeat(ELEMENTS_MAX + 1));
        assert!(matches!(parse(&wide), Err(Error::Xml(_))));
    }
}
