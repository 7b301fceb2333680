//! A lexical walk over JSON text that knows where it is: the path of each
//! number literal (`attrs.n`, `[2].result.status`) and the path at a byte
//! offset. It backs the strict parser's error messages and its check of
//! integer literals too wide for 64 bits, which the parser itself sees only
//! as doubles. It runs only on those cold paths, never per event.

/// One step of a path: an object member or an array element.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where the walk is inside one container.
struct Frame {
    step: Option<Step>,
    object: bool,
    /// In an object: the next string is a key.
    want_key: bool,
}

/// A JSON path written the way messages name fields: `a.b[3].c`.
fn render(frames: &[Frame]) -> String {
    let mut s = String::new();
    for f in frames {
        match &f.step {
            Some(Step::Key(k)) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Some(Step::Index(i)) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
            None => {}
        }
    }
    s
}

/// A number literal found by [`number_literals`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberLiteral<'a> {
    /// The literal as written.
    pub text: &'a str,
    /// Its path (empty for a top-level number).
    pub path: String,
}

/// Walks `input`, calling `on_number` for each number literal, and stops
/// at byte offset `stop` (if given) returning the path there. Malformed
/// text ends the walk early: callers pass text a parser accepted (or its
/// valid prefix).
fn walk<'a>(
    input: &'a [u8],
    stop: Option<usize>,
    mut on_number: impl FnMut(&'a str, &[Frame]),
) -> String {
    let mut frames: Vec<Frame> = Vec::new();
    let mut i = 0usize;
    while i < input.len() {
        if stop.is_some_and(|s| i >= s) {
            break;
        }
        match input[i] {
            b'{' | b'[' => {
                let object = input[i] == b'{';
                if let Some(top) = frames.last_mut() {
                    if !top.object && top.step.is_none() {
                        top.step = Some(Step::Index(0));
                    }
                }
                frames.push(Frame {
                    step: None,
                    object,
                    want_key: object,
                });
                i += 1;
            }
            b'}' | b']' => {
                frames.pop();
                i += 1;
            }
            b',' => {
                if let Some(top) = frames.last_mut() {
                    if top.object {
                        top.want_key = true;
                    } else {
                        let next = match top.step {
                            Some(Step::Index(n)) => n + 1,
                            _ => 1,
                        };
                        top.step = Some(Step::Index(next));
                    }
                }
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < input.len() && input[j] != b'"' {
                    j += if input[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(input.len());
                if let Some(top) = frames.last_mut() {
                    if top.object && top.want_key {
                        let raw = String::from_utf8_lossy(&input[start..end]);
                        let key = serde_json::from_str::<String>(&format!("\"{raw}\""))
                            .unwrap_or_else(|_| raw.into_owned());
                        top.step = Some(Step::Key(key));
                        top.want_key = false;
                    } else if !top.object && top.step.is_none() {
                        top.step = Some(Step::Index(0));
                    }
                }
                i = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < input.len()
                    && matches!(input[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if let Some(top) = frames.last_mut() {
                    if !top.object && top.step.is_none() {
                        top.step = Some(Step::Index(0));
                    }
                }
                if let Ok(text) = std::str::from_utf8(&input[start..i]) {
                    on_number(text, &frames);
                }
            }
            b't' | b'f' | b'n' => {
                if let Some(top) = frames.last_mut() {
                    if !top.object && top.step.is_none() {
                        top.step = Some(Step::Index(0));
                    }
                }
                while i < input.len() && input[i].is_ascii_alphabetic() {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    render(&frames)
}

/// Every number literal in `input`, in document order, with its path.
pub fn number_literals(input: &[u8]) -> Vec<NumberLiteral<'_>> {
    let mut out = Vec::new();
    walk(input, None, |text, frames| {
        out.push(NumberLiteral {
            text,
            path: render(frames),
        })
    });
    out
}

/// The path of the value being read at byte `offset` of `input` (empty at
/// the top level).
pub fn path_at(input: &[u8], offset: usize) -> String {
    walk(input, Some(offset), |_, _| {})
}

/// The byte offset of 1-based `line` and `column` (as serde_json reports
/// them) in `input`.
pub fn offset_of(input: &[u8], line: usize, column: usize) -> usize {
    let mut at = 0usize;
    for _ in 1..line {
        match input[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => return input.len(),
        }
    }
    (at + column).min(input.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_their_paths() {
        let t = br#"{"a":1,"b":{"c":[2,{"d":3e5}],"e\"x":-4},"f":[[5],6]}"#;
        let got: Vec<(String, String)> = number_literals(t)
            .into_iter()
            .map(|n| (n.text.to_string(), n.path))
            .collect();
        let want = [
            ("1", "a"),
            ("2", "b.c[0]"),
            ("3e5", "b.c[1].d"),
            ("-4", "b.e\"x"),
            ("5", "f[0][0]"),
            ("6", "f[1]"),
        ];
        assert_eq!(
            got,
            want.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(number_literals(b"[1,2]")[1].path, "[1]");
        assert_eq!(number_literals(b"7")[0].path, "");
    }

    #[test]
    fn path_at_an_offset() {
        let t = br#"{"ts":"x","attrs":{"n":9007199254740993}}"#;
        let at = t.iter().position(|&b| b == b'9').unwrap() + 3;
        assert_eq!(path_at(t, at), "attrs.n");
        assert_eq!(offset_of(b"ab\ncd", 2, 1), 4);
    }
}
