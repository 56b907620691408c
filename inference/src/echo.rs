//! Client text quoted in answers and log lines, cut to a bounded prefix: a request may carry a 100 MB name or a
//! million-entry shape, and an error that repeats it whole turns one request into megabytes of log and of
//! `grpc-message`.

use std::fmt;

/// Characters of client text an answer or a log line repeats.
pub const MAX_TEXT_CHARS: usize = 64;
/// Items of a client list (a shape's dimensions, a map's keys) an answer repeats.
pub const MAX_ITEMS: usize = 8;

/// `text`, cut after [`MAX_TEXT_CHARS`] characters with how much was left out.
pub fn text(text: &str) -> Text<'_> {
    Text(text)
}

/// `items` as `[a, b, ...]`, cut after [`MAX_ITEMS`] with how many there were.
pub fn list<T: fmt::Debug>(items: &[T]) -> List<'_, T> {
    List(items)
}

/// `items` joined by `separator`, each cut like [`text`], cut after [`MAX_ITEMS`] with how many there were.
pub fn joined<'a, S: AsRef<str>>(items: &'a [S], separator: &'a str) -> Joined<'a, S> {
    Joined { items, separator }
}

pub struct Joined<'a, S> {
    items: &'a [S],
    separator: &'a str,
}

impl<S: AsRef<str>> fmt::Display for Joined<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().take(MAX_ITEMS).enumerate() {
            if i > 0 {
                f.write_str(self.separator)?;
            }
            write!(f, "{}", text(item.as_ref()))?;
        }
        if self.items.len() > MAX_ITEMS {
            write!(f, "{}... ({} in all)", self.separator, self.items.len())?;
        }
        Ok(())
    }
}

pub struct Text<'a>(&'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_TEXT_CHARS) {
            None => f.write_str(self.0),
            Some((cut, _)) => write!(f, "{}... ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub struct List<'a, T>(&'a [T]);

impl<T: fmt::Debug> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.iter().take(MAX_ITEMS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            // An item's own text (a map key) is cut too.
            write!(f, "{}", text(&format!("{item:?}")))?;
        }
        if self.0.len() > MAX_ITEMS {
            write!(f, ", ... ({} in all)", self.0.len())?;
        }
        f.write_str("]")
    }
}

impl<T: fmt::Debug> fmt::Debug for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_and_lists_are_quoted_whole() {
        assert_eq!(text("catnet").to_string(), "catnet");
        assert_eq!(list(&[1i64, 64, 64, 3]).to_string(), "[1, 64, 64, 3]");
        assert_eq!(list::<i64>(&[]).to_string(), "[]");
    }

    #[test]
    fn long_text_and_lists_are_cut_with_their_size() {
        let long = "é".repeat(100_000);
        let quoted = text(&long).to_string();
        assert_eq!(quoted, format!("{}... (200000 bytes)", "é".repeat(64)));
        let shape = vec![7i64; 1_000_000];
        assert_eq!(list(&shape).to_string(), "[7, 7, 7, 7, 7, 7, 7, 7, ... (1000000 in all)]");
        let keys = vec!["k".repeat(1000)];
        assert!(list(&keys).to_string().len() < 100);
        assert_eq!(joined(&["a", "b"], ",").to_string(), "a,b");
        let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(joined(&many, ",").to_string(), "0,1,2,3,4,5,6,7,... (20 in all)");
    }

    proptest! {
        #[test]
        fn a_quote_is_bounded_whatever_the_input(s in ".{0,300}", n in 0usize..50) {
            prop_assert!(text(&s).to_string().chars().count() <= MAX_TEXT_CHARS + 30);
            let items = vec![s.clone(); n];
            prop_assert!(list(&items).to_string().chars().count() <= (MAX_ITEMS + 1) * (MAX_TEXT_CHARS + 40));
        }
    }
}
