//! A zero-copy view of a header map as the proxy serialises it (`proxy_get_header_map_pairs`): fetching every
//! request header in one host call and reading them in place is cheaper than one call per header (measured by
//! `make bench -- instructions`: asking Envoy for the five headers basic-auth reads, one
//! `proxy_get_header_map_value` each, costs about 29k instructions per request more than one call for all of
//! them), and it lets a plugin see duplicates, which a read by name (Envoy gives the first value) would hide.
//! The buffer comes from the host, so every offset is checked: a bad buffer is an error, never a panic.
//!
//! Layout: u32 count; count × (u32 key length, u32 value length); then each key and value, each followed by NUL.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHeaderMap;

/// Where one pair's name and value lie in the buffer (start, length), checked when the buffer was parsed. A
/// lookup compares the length first: most names are passed over on it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    key: (usize, usize),
    value: (usize, usize),
}

#[derive(Debug, Clone)]
pub struct HeaderMapView<'a> {
    buf: &'a [u8],
    spans: Cow<'a, [Span]>,
}

/// A serialised map with its pairs found once: what the parts of a composite filter share, each reading it
/// through [`HeaderMap::view`] without parsing it again. A pair a part adds ([`Edit::Insert`]) is written after
/// the proxy's bytes and found through its place only (the count and sizes in front stay the proxy's): an insert
/// rewrites nothing.
#[derive(Debug, Clone)]
pub struct HeaderMap {
    raw: Vec<u8>,
    spans: Vec<Span>,
}

thread_local! {
    /// The table of the last map dropped, for the next one: a request's map reuses it instead of allocating.
    static SPARE_SPANS: std::cell::RefCell<Vec<Span>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl HeaderMap {
    pub fn parse(raw: Vec<u8>) -> Result<Self, BadHeaderMap> {
        let mut spans = SPARE_SPANS.try_with(std::cell::RefCell::take).unwrap_or_default();
        spans.clear();
        find_spans_into(&raw, &mut spans)?;
        Ok(Self { raw, spans })
    }

    pub fn view(&self) -> HeaderMapView<'_> {
        HeaderMapView { buf: &self.raw, spans: Cow::Borrowed(&self.spans) }
    }

    /// One more pair, after the others.
    fn push(&mut self, name: &str, value: &[u8]) {
        let at = self.raw.len();
        self.raw.reserve(name.len() + value.len() + 2);
        self.raw.extend_from_slice(name.as_bytes());
        self.raw.push(0);
        self.raw.extend_from_slice(value);
        self.raw.push(0);
        self.spans.push(Span { key: (at, name.len()), value: (at + name.len() + 1, value.len()) });
    }
}

fn u32_at(bytes: [u8; 4]) -> Result<usize, BadHeaderMap> {
    usize::try_from(u32::from_le_bytes(bytes)).map_err(|_| BadHeaderMap)
}

impl Drop for HeaderMap {
    fn drop(&mut self) {
        let spans = std::mem::take(&mut self.spans);
        // `try_with`: a map dropped while the thread's locals are torn down (native tests) just frees its table.
        let _ = SPARE_SPANS.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spans.capacity() > spare.capacity() {
                *spare = spans;
            }
        });
    }
}

fn find_spans(buf: &[u8]) -> Result<Vec<Span>, BadHeaderMap> {
    let mut spans = Vec::new();
    find_spans_into(buf, &mut spans)?;
    Ok(spans)
}

/// Every pair's place in `buf`, each checked to lie inside it and to end with its NUL, appended to `spans`.
fn find_spans_into(buf: &[u8], spans: &mut Vec<Span>) -> Result<(), BadHeaderMap> {
    let Some((count, rest)) = buf.split_first_chunk::<4>() else {
        return if buf.is_empty() { Ok(()) } else { Err(BadHeaderMap) };
    };
    let count = u32_at(*count)?;
    let table_len = count.checked_mul(8).ok_or(BadHeaderMap)?;
    let table = rest.get(..table_len).ok_or(BadHeaderMap)?;
    spans.reserve(count);
    let mut at = 4 + table_len;
    // A place runs from `at` for `len` bytes and must be followed by a NUL inside the buffer.
    let mut take = |len: usize| -> Result<(usize, usize), BadHeaderMap> {
        let end = at.checked_add(len).ok_or(BadHeaderMap)?;
        if buf.get(end) != Some(&0) {
            return Err(BadHeaderMap);
        }
        let span = (at, len);
        at = end + 1;
        Ok(span)
    };
    for sizes in table.chunks_exact(8) {
        let (key, value) = sizes.split_at(4);
        let key = take(u32_at(key.try_into().map_err(|_| BadHeaderMap)?)?)?;
        let value = take(u32_at(value.try_into().map_err(|_| BadHeaderMap)?)?)?;
        spans.push(Span { key, value });
    }
    Ok(())
}

impl<'a> HeaderMapView<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Self, BadHeaderMap> {
        Ok(Self { buf, spans: Cow::Owned(find_spans(buf)?) })
    }

    /// Every pair, in order.
    fn pairs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.spans.iter().map(|span| (self.slice(span.key), self.slice(span.value)))
    }

    /// A span's bytes (every span was checked against this buffer when it was found or added).
    fn slice(&self, (start, len): (usize, usize)) -> &'a [u8] {
        self.buf.get(start..start + len).unwrap_or_default()
    }

    /// The values whose name is `name`: names of another length are passed over without reading them.
    fn named<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'a [u8]> + 's {
        self.spans
            .iter()
            .filter(move |span| span.key.1 == name.len() && self.slice(span.key) == name)
            .map(|span| self.slice(span.value))
    }

    /// Several names looked up in one pass over the map: each one's first value and how many times it occurs
    /// (lower-case names, as the proxy stores them). A filter that reads several headers pays for one walk
    /// instead of one per name.
    pub fn find<const N: usize>(&self, names: [&str; N]) -> [Found<'a>; N] {
        let mut found = [Found::default(); N];
        for span in self.spans.iter() {
            for (name, found) in names.iter().zip(found.iter_mut()) {
                // The length first: most names are passed over on it alone, without reading them.
                if span.key.1 == name.len() && self.slice(span.key) == name.as_bytes() {
                    found.first = found.first.or(Some(self.slice(span.value)));
                    found.count += 1;
                }
            }
        }
        found
    }

    /// The first value of `name` (lower-case, as the proxy stores header names).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.named(name.as_bytes()).next()
    }

    /// Every value of `name`, in order.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.named(name.as_bytes())
    }

    /// Whether `name` is present in any letter case (the host stores names lower-case; a header that must not
    /// get through is looked for without trusting that).
    pub fn contains_ignoring_case(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.spans.iter().any(|span| span.key.1 == name.len() && self.slice(span.key).eq_ignore_ascii_case(name))
    }

    /// Every name in the map that a backend may read as `name`: in any letter case, with `_` for `-` (CGI, WSGI,
    /// Rack and PHP fold both into `HTTP_X_NAME`), once per occurrence.
    pub fn spellings_of<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        let name = name.as_bytes();
        self.spans
            .iter()
            .filter(move |span| span.key.1 == name.len())
            .map(|span| self.slice(span.key))
            .filter(move |key| key.iter().zip(name).all(|(&a, &b)| fold_header_byte(a) == fold_header_byte(b)))
    }
}

fn fold_header_byte(byte: u8) -> u8 {
    if byte == b'_' { b'-' } else { byte.to_ascii_lowercase() }
}

/// What [`HeaderMapView::find`] found of one name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found<'a> {
    pub first: Option<&'a [u8]>,
    pub count: usize,
}

impl<'a> Found<'a> {
    /// The first value as text (lossy for non-UTF-8 bytes), or `""` when absent. UTF-8 is checked at full speed
    /// first; the lossy walk, char by char, only for a value that needs it.
    pub fn text(&self) -> Cow<'a, str> {
        let value = self.first.unwrap_or_default();
        std::str::from_utf8(value).map_or_else(|_| String::from_utf8_lossy(value), Cow::Borrowed)
    }
}

/// How a header change by the plugin leaves the map, for the parts of a composite filter that read it next
/// without asking the proxy again: only where the proxy's result is certain. Envoy removes every value of a
/// name; setting or adding a name the map does not hold appends it (reads by name cannot tell where). Setting a
/// name already present replaces only its first value, and pseudo-headers have their own place: for those the
/// map is fetched again (`None`).
#[derive(Debug, Clone, Copy)]
pub enum Edit<'e> {
    Remove(&'e str),
    /// Set or add: the same when the name is absent.
    Insert(&'e str, &'e str),
}

impl Edit<'_> {
    /// Applies the edit to `map` as the proxy applied it to the request; `false` when the proxy's result is
    /// not certain (then `map` must be fetched again).
    pub fn apply(self, map: &mut HeaderMap) -> bool {
        match self {
            Edit::Remove(name) | Edit::Insert(name, _) if name.starts_with(':') => false,
            Edit::Remove(name) => {
                let name = lower_case(name);
                let view = map.view();
                let mut pairs: Vec<(&str, &[u8])> = Vec::with_capacity(map.spans.len());
                for (k, v) in view.pairs().filter(|(k, _)| *k != name.as_bytes()) {
                    let Ok(k) = std::str::from_utf8(k) else {
                        return false;
                    };
                    pairs.push((k, v));
                }
                match HeaderMap::parse(serialize(&pairs)) {
                    Ok(removed) => {
                        *map = removed;
                        true
                    }
                    Err(_) => false,
                }
            }
            Edit::Insert(name, value) => {
                let name = lower_case(name);
                if map.view().get(&name).is_some() {
                    return false;
                }
                map.push(&name, value.as_bytes());
                true
            }
        }
    }
}

fn lower_case(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) { name.to_ascii_lowercase().into() } else { name.into() }
}

/// The serialised form of `pairs`, as the proxy writes it (also used by the plugins' local replies).
pub fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(k, v)| 10 + k.len() + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(&len32(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        HeaderMap::parse(serialize(pairs)).unwrap()
    }

    fn pairs_of(map: &HeaderMap) -> Vec<(&[u8], &[u8])> {
        map.view().pairs().collect()
    }

    /// `map` after `edit`, or `None` when the edit leaves it to be fetched again.
    fn edited(map: &HeaderMap, edit: Edit<'_>) -> Option<HeaderMap> {
        let mut map = map.clone();
        edit.apply(&mut map).then_some(map)
    }

    #[test]
    fn spellings_fold_case_and_underscores() {
        let raw = map(&[("x_user", b"1"), ("X-User", b"2"), ("x-users", b"3"), ("xx-user", b"4"), ("x-uSer", b"5")]);
        let view = raw.view();
        let found: Vec<&[u8]> = view.spellings_of("x-user").collect();
        assert_eq!(found, [&b"x_user"[..], b"X-User", b"x-uSer"]);
        assert_eq!(view.spellings_of("x-absent").count(), 0);
    }

    #[test]
    fn edits_apply_only_where_the_proxys_result_is_certain() {
        let raw = map(&[(":path", b"/"), ("x-user", b"forged"), ("a", b"1"), ("x-user", b"again")]);
        let removed = edited(&raw, Edit::Remove("X-User")).unwrap();
        let view = removed.view();
        let [user, path, a] = view.find(["x-user", ":path", "a"]);
        assert_eq!((user.count, path.first, a.first), (0, Some(&b"/"[..]), Some(&b"1"[..])));
        let inserted = edited(&removed, Edit::Insert("x-user", "alice")).unwrap();
        assert_eq!(pairs_of(&inserted), pairs_of(&map(&[(":path", b"/"), ("a", b"1"), ("x-user", b"alice")])));
        assert_eq!(inserted.view().values("x-user").collect::<Vec<_>>(), [b"alice"]);
        // A removal after an insert sees the inserted pair too.
        let again = edited(&inserted, Edit::Remove("a")).unwrap();
        assert_eq!(pairs_of(&again), pairs_of(&map(&[(":path", b"/"), ("x-user", b"alice")])));
        // Setting a present name replaces its first value only, and pseudo-headers have their own place: fetch.
        assert!(edited(&raw, Edit::Insert("x-user", "alice")).is_none());
        assert!(edited(&raw, Edit::Insert(":path", "/x")).is_none());
        assert!(edited(&raw, Edit::Remove(":authority")).is_none());
        let first = edited(&HeaderMap::parse(Vec::new()).unwrap(), Edit::Insert("x-user", "alice")).unwrap();
        assert_eq!(pairs_of(&first), pairs_of(&map(&[("x-user", b"alice")])), "an empty map gets its first pair");
    }

    #[test]
    fn a_shared_map_reads_as_its_buffer_does() {
        let shared = map(&[(":authority", b"h"), ("a", b"1"), ("a", b"2")]);
        let parsed = HeaderMapView::parse(&shared.raw).unwrap();
        let view = shared.view();
        assert_eq!(view.pairs().collect::<Vec<_>>(), parsed.pairs().collect::<Vec<_>>());
        let [authority, a] = view.find([":authority", "a"]);
        assert_eq!((authority.text(), a.count), ("h".into(), 2));
        assert!(HeaderMap::parse(b"broken".to_vec()).is_err());
    }

    #[test]
    fn a_map_parsed_after_another_was_dropped_holds_only_its_own_pairs() {
        let long: Vec<(String, Vec<u8>)> = (0..12).map(|i| (format!("h{i}"), vec![b'v'; i])).collect();
        let long: Vec<(&str, &[u8])> = long.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let first = map(&long);
        assert_eq!(pairs_of(&first), long.iter().map(|(k, v)| (k.as_bytes(), *v)).collect::<Vec<_>>());
        drop(first);
        // The next map takes the dropped one's table: it must read two pairs, not twelve.
        let second = map(&[("a", b"1"), ("b", b"2")]);
        assert_eq!(pairs_of(&second), [(&b"a"[..], &b"1"[..]), (b"b", b"2")]);
        assert_eq!(second.view().get("h3"), None);
        // A buffer that fails to parse leaves no half-filled table behind.
        assert!(HeaderMap::parse(serialize(&long)[..40].to_vec()).is_err());
        assert_eq!(pairs_of(&map(&[("c", b"3")])), [(&b"c"[..], &b"3"[..])]);
    }

    #[test]
    fn round_trip_and_duplicates() {
        let buf = serialize(&[(":path", b"/a"), ("authorization", b"x"), ("authorization", b"\xff"), ("empty", b"")]);
        let view = HeaderMapView::parse(&buf).unwrap();
        assert_eq!(view.get(":path"), Some(&b"/a"[..]));
        assert_eq!(view.get("authorization"), Some(&b"x"[..]));
        assert_eq!(view.find(["authorization"])[0].count, 2);
        assert_eq!(view.values("authorization").collect::<Vec<_>>(), [&b"x"[..], b"\xff"]);
        assert_eq!(view.get("empty"), Some(&b""[..]));
        assert_eq!(view.get("missing"), None);
        assert_eq!(view.find(["missing"]), [Found::default()]);
        assert_eq!(view.find(["missing"])[0].text(), "");
        assert!(HeaderMapView::parse(&[]).unwrap().get("a").is_none());
    }

    #[test]
    fn bad_buffers_are_errors() {
        let good = serialize(&[("k", b"v")]);
        for cut in 1..good.len() {
            assert!(HeaderMapView::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(HeaderMapView::parse(&no_nul).is_err());
        assert!(HeaderMapView::parse(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        /// Appending to the map gives what serialising and parsing the longer list gives.
        #[test]
        fn an_insert_appends_what_serialising_would_write(
            pairs in prop::collection::vec(("[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..12)), 0..8),
            value in "[ -~]{0,16}",
        ) {
            let borrowed: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let inserted = edited(&map(&borrowed), Edit::Insert("X-New-Name", &value)).unwrap();
            let mut longer = borrowed.clone();
            longer.push(("x-new-name", value.as_bytes()));
            // Read as the longer map reads, by every name.
            let longer = map(&longer);
            prop_assert_eq!(pairs_of(&inserted), pairs_of(&longer));
            for (name, _) in &longer.view().pairs().collect::<Vec<_>>() {
                let name = std::str::from_utf8(name).unwrap();
                prop_assert_eq!(inserted.view().find([name]), longer.view().find([name]));
            }
        }

        #[test]
        fn any_bytes_parse_or_fail_cleanly(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let view = HeaderMapView::parse(&buf).ok().map(|v| v.pairs().collect::<Vec<_>>());
            let shared = HeaderMap::parse(buf.clone()).ok();
            prop_assert_eq!(view, shared.as_ref().map(pairs_of));
        }

        #[test]
        fn serialized_maps_read_back(pairs in proptest::collection::vec(("[a-z:-]{1,12}", proptest::collection::vec(any::<u8>(), 0..20)), 0..8)) {
            let borrowed: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let buf = serialize(&borrowed);
            let view = HeaderMapView::parse(&buf).unwrap();
            for (k, _) in &pairs {
                let first = pairs.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_slice());
                prop_assert_eq!(view.get(k), first);
            }
        }
    }
}
