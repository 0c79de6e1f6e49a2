//! Finds the `image` value of every service of a Compose / Swarm stack file and the exact
//! bytes that spell it.
//!
//! The YAML is read with `saphyr-parser`: an event parser (YAML 1.2, the maintained
//! successor of yaml-rust/yaml-rust2, two small dependencies) that gives each event a
//! source span. A tree of the events tells which scalars are service images, following
//! aliases (`image: *img`) and merge keys (`<<: *common`), so `image:` text anywhere
//! else (labels, environment, extension fields no service uses) is never matched. The
//! parser's spans count characters and, for quoted scalars, may run past the closing
//! quote, so the scalar's text is located again here from the span's start and checked
//! against the parsed value before anyone may rewrite it.

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// How deep merge keys are followed (guards against an anchor merged into itself).
const MAX_MERGE_DEPTH: usize = 16;

/// How the image value is quoted in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `image: reg/x:1`
    Plain,
    /// `image: 'reg/x:1'`
    Single,
    /// `image: "reg/x:1"`
    Double,
}

/// Why a service's image value cannot be rewritten in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// `image:` with no value.
    Empty,
    /// A mapping or a sequence instead of a string.
    NotAString,
    /// A literal (`|`) or folded (`>`) block scalar.
    BlockScalar,
    /// A scalar written over several lines.
    MultiLine,
    /// A double-quoted scalar with backslash escapes.
    Escapes,
    /// The parsed value does not match the text at its position.
    NotLocated,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unreadable::Empty => "the image value is empty",
            Unreadable::NotAString => "the image value is not a string",
            Unreadable::BlockScalar => "the image value is a block scalar (| or >)",
            Unreadable::MultiLine => "the image value spans several lines",
            Unreadable::Escapes => "the image value uses backslash escapes",
            Unreadable::NotLocated => "the image value's text could not be located exactly",
        })
    }
}

/// One service image value of the file.
#[derive(Debug, Clone)]
pub struct Site {
    /// The services using this value (several when it is an anchored scalar they share).
    pub services: Vec<String>,
    /// Line of the value (1-based).
    pub line: usize,
    /// The value as parsed.
    pub value: String,
    /// Where its text is: byte range of the value without its quotes, and the quoting.
    pub text: Result<(std::ops::Range<usize>, Quoting), Unreadable>,
}

/// Why the file cannot be read as a stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlError {
    /// The YAML does not parse.
    Syntax {
        /// Line (1-based).
        line: usize,
        /// Column (1-based, in characters).
        col: usize,
        /// The parser's message.
        message: String,
    },
    /// A service (or a mapping it merges) has two `image` keys.
    DuplicateImage {
        /// Line of the second key.
        line: usize,
    },
}

enum Node {
    Scalar {
        value: String,
        style: ScalarStyle,
        end: usize,
    },
    Map(Vec<(usize, usize)>),
    Seq(Vec<usize>),
    Alias(usize),
}

/// The event stream as a tree: nodes by id, with their start (character index).
struct Tree {
    nodes: Vec<(Node, usize)>,
    anchors: HashMap<usize, usize>,
    roots: Vec<usize>,
}

enum Frame {
    Map { id: usize, key: Option<usize> },
    Seq { id: usize },
}

impl Tree {
    fn parse(text: &str) -> Result<Tree, YamlError> {
        let mut tree = Tree {
            nodes: Vec::new(),
            anchors: HashMap::new(),
            roots: Vec::new(),
        };
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(event) = parser.next_event() {
            let (event, span) = event.map_err(|e| YamlError::Syntax {
                line: e.marker().line(),
                col: e.marker().col() + 1,
                message: e.info().to_string(),
            })?;
            let start = span.start.index();
            let (node, anchor, opens) = match event {
                Event::Scalar(value, style, anchor, _) => {
                    let end = span.end.index();
                    let value = value.into_owned();
                    (Node::Scalar { value, style, end }, anchor, false)
                }
                Event::Alias(anchor) => (Node::Alias(anchor), 0, false),
                Event::MappingStart(anchor, _) => (Node::Map(Vec::new()), anchor, true),
                Event::SequenceStart(anchor, _) => (Node::Seq(Vec::new()), anchor, true),
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    continue;
                }
                _ => continue,
            };
            let id = tree.nodes.len();
            tree.nodes.push((node, start));
            if anchor != 0 {
                tree.anchors.insert(anchor, id);
            }
            match stack.last_mut() {
                None => tree.roots.push(id),
                Some(Frame::Seq { id: seq }) => {
                    if let (Node::Seq(items), _) = &mut tree.nodes[*seq] {
                        items.push(id);
                    }
                }
                Some(Frame::Map { id: map, key }) => match key.take() {
                    None => *key = Some(id),
                    Some(k) => {
                        if let (Node::Map(entries), _) = &mut tree.nodes[*map] {
                            entries.push((k, id));
                        }
                    }
                },
            }
            if opens {
                stack.push(match tree.nodes[id].0 {
                    Node::Map(_) => Frame::Map { id, key: None },
                    _ => Frame::Seq { id },
                });
            }
        }
        Ok(tree)
    }

    /// The node itself, or the anchored node an alias stands for.
    fn deref(&self, mut id: usize) -> Option<usize> {
        for _ in 0..MAX_MERGE_DEPTH {
            match self.nodes[id].0 {
                Node::Alias(anchor) => id = *self.anchors.get(&anchor)?,
                _ => return Some(id),
            }
        }
        None
    }

    fn string(&self, id: usize) -> Option<&str> {
        match &self.nodes[self.deref(id)?].0 {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    fn entries(&self, id: usize) -> &[(usize, usize)] {
        match self.deref(id).map(|id| &self.nodes[id].0) {
            Some(Node::Map(entries)) => entries,
            _ => &[],
        }
    }

    /// The nodes of a mapping's `image` key and value, looking through merge keys as
    /// Compose does (the mapping's own key first, then the merged mappings in order).
    fn image_of(
        &self,
        map: usize,
        depth: usize,
        text: &str,
    ) -> Result<Option<(usize, usize)>, YamlError> {
        if depth > MAX_MERGE_DEPTH {
            return Ok(None);
        }
        let entries = self.entries(map);
        let mut images = entries
            .iter()
            .filter(|(k, _)| self.string(*k) == Some("image"));
        if let Some((key, value)) = images.next() {
            if let Some((second, _)) = images.next() {
                let line = line_of(text, self.nodes[*second].1);
                return Err(YamlError::DuplicateImage { line });
            }
            return Ok(self.deref(*value).map(|value| (*key, value)));
        }
        for (_, merged) in entries
            .iter()
            .filter(|(k, _)| self.string(*k) == Some("<<"))
        {
            let sources = match self.deref(*merged).map(|id| &self.nodes[id].0) {
                Some(Node::Seq(items)) => items.clone(),
                _ => vec![*merged],
            };
            for source in sources {
                if let Some(found) = self.image_of(source, depth + 1, text)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
}

/// Byte offsets of every character (and of the end), to turn the parser's indices into
/// byte offsets.
fn char_offsets(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect()
}

fn line_of_byte(text: &str, byte: usize) -> usize {
    1 + text.as_bytes()[..byte]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn line_of(text: &str, char_index: usize) -> usize {
    let byte = text
        .char_indices()
        .nth(char_index)
        .map_or(text.len(), |(i, _)| i);
    line_of_byte(text, byte)
}

/// Skips node properties (`&anchor`, `!tag`), blanks and comments before a scalar.
fn skip_properties(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() {
        match b[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'&' | b'!' => {
                while pos < b.len() && !b[pos].is_ascii_whitespace() {
                    pos += 1;
                }
            }
            b'#' => {
                while pos < b.len() && b[pos] != b'\n' {
                    pos += 1;
                }
            }
            _ => break,
        }
    }
    pos
}

/// End (exclusive) of a quoted scalar's content starting after the opening quote.
fn quoted_end(b: &[u8], mut pos: usize, quote: u8) -> Option<usize> {
    while pos < b.len() {
        match b[pos] {
            b'\\' if quote == b'"' => pos += 2,
            b'\'' if quote == b'\'' && b.get(pos + 1) == Some(&b'\'') => pos += 2,
            c if c == quote => return Some(pos),
            _ => pos += 1,
        }
    }
    None
}

/// Locates the text of a scalar node: its content's byte range and quoting.
fn locate(
    text: &str,
    offsets: &[usize],
    start: usize,
    end: usize,
    value: &str,
    style: ScalarStyle,
) -> Result<(std::ops::Range<usize>, Quoting), Unreadable> {
    let b = text.as_bytes();
    let pos = skip_properties(b, offsets[start]);
    let (range, quoting) = match style {
        ScalarStyle::Plain if value.is_empty() => return Err(Unreadable::Empty),
        ScalarStyle::Plain => (pos..offsets[end], Quoting::Plain),
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            let (quote, quoting) = match style {
                ScalarStyle::SingleQuoted => (b'\'', Quoting::Single),
                _ => (b'"', Quoting::Double),
            };
            if b.get(pos) != Some(&quote) {
                return Err(Unreadable::NotLocated);
            }
            let close = quoted_end(b, pos + 1, quote).ok_or(Unreadable::NotLocated)?;
            (pos + 1..close, quoting)
        }
        _ => return Err(Unreadable::BlockScalar),
    };
    let raw = text.get(range.clone()).ok_or(Unreadable::NotLocated)?;
    if raw.contains(['\n', '\r']) {
        return Err(Unreadable::MultiLine);
    }
    if quoting == Quoting::Double && raw.contains('\\') {
        return Err(Unreadable::Escapes);
    }
    let decoded = match quoting {
        Quoting::Single => raw.replace("''", "'"),
        _ => raw.to_string(),
    };
    if decoded != value {
        return Err(Unreadable::NotLocated);
    }
    Ok((range, quoting))
}

/// Every service image value of `text`, in file order.
pub fn service_images(text: &str) -> Result<Vec<Site>, YamlError> {
    let tree = Tree::parse(text)?;
    let offsets = char_offsets(text);
    // Value node -> its first key node and the services using it (an anchored scalar may
    // serve several).
    let mut found: BTreeMap<usize, (usize, Vec<String>)> = BTreeMap::new();
    for &root in &tree.roots {
        for (key, services) in tree.entries(root) {
            if tree.string(*key) != Some("services") {
                continue;
            }
            for (name, service) in tree.entries(*services) {
                let name = tree.string(*name).unwrap_or("?").to_string();
                if let Some((key, node)) = tree.image_of(*service, 0, text)? {
                    found.entry(node).or_insert((key, Vec::new())).1.push(name);
                }
            }
        }
    }
    let mut sites: Vec<Site> = found
        .into_iter()
        .map(|(node, (key, services))| {
            let (node, start) = &tree.nodes[node];
            let (value, located) = match node {
                Node::Scalar { value, style, end } => (
                    value.clone(),
                    locate(text, &offsets, *start, *end, value, *style),
                ),
                _ => (String::new(), Err(Unreadable::NotAString)),
            };
            // The value's line, or the key's where the value has no single line.
            let line = match &located {
                Ok((range, _)) => line_of_byte(text, range.start),
                Err(_) => line_of(text, tree.nodes[key].1),
            };
            Site {
                services,
                line,
                value,
                text: located,
            }
        })
        .collect();
    sites.sort_by_key(|s| (s.line, s.text.as_ref().map(|t| t.0.start).unwrap_or(0)));
    Ok(sites)
}
