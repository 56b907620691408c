//! Counting gRPC messages in a request body as it streams: each message is a 5-byte prefix (compressed flag,
//! big-endian u32 length) and its payload. Only prefix bytes are ever read; payload bytes are skipped by
//! count, so a 100 MB message costs a few host reads, not a copy. Prefixes may be split across chunks anywhere.

/// Where the counter is in the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameCounter {
    prefix: [u8; 5],
    prefix_len: usize,
    payload_left: u64,
    messages: u64,
    largest: u64,
}

/// A message larger than allowed, seen at its prefix (before its payload has moved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    pub size: u64,
    pub limit: u64,
}

/// Why the counter stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError<E> {
    Oversized(Oversized),
    /// The host could not give the bytes asked for.
    Read(E),
}

impl FrameCounter {
    /// Advances over a chunk of `chunk_len` bytes. `read(offset, len)` returns bytes of the chunk; it is called
    /// only for prefix bytes.
    pub fn advance<E>(
        &mut self,
        chunk_len: usize,
        max_message: Option<u64>,
        mut read: impl FnMut(usize, usize) -> Result<Vec<u8>, E>,
    ) -> Result<(), FrameError<E>> {
        let mut pos = 0usize;
        while pos < chunk_len {
            let left = chunk_len - pos;
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left).map_or(left, |p| p.min(left));
                self.payload_left -= skip as u64;
                pos += skip;
                continue;
            }
            let take = (5 - self.prefix_len).min(left);
            let bytes = read(pos, take).map_err(FrameError::Read)?;
            // A host that returns fewer bytes than asked gets asked again for the rest, never indexed past.
            let got = bytes.len().min(take);
            if got == 0 {
                return Ok(());
            }
            self.prefix[self.prefix_len..self.prefix_len + got].copy_from_slice(&bytes[..got]);
            self.prefix_len += got;
            pos += got;
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let size =
                    u64::from(u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]));
                self.messages += 1;
                self.largest = self.largest.max(size);
                if let Some(limit) = max_message.filter(|limit| size > *limit) {
                    return Err(FrameError::Oversized(Oversized { size, limit }));
                }
                self.payload_left = size;
            }
        }
        Ok(())
    }

    /// Messages whose prefix has been read.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// Whether the stream stopped inside a prefix or a payload (a truncated or lying length prefix).
    pub fn is_mid_message(&self) -> bool {
        self.prefix_len > 0 || self.payload_left > 0
    }
}

/// Frames `messages` as a gRPC body (for tests and benchmarks).
pub fn encode(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.push(0);
        out.extend_from_slice(&u32::try_from(m.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    /// Feeds `body` cut at `cuts`, returning the counter and the first error.
    fn feed(body: &[u8], cuts: &[usize], limit: Option<u64>) -> (FrameCounter, Option<Oversized>, usize) {
        let mut counter = FrameCounter::default();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        bounds.push(0);
        bounds.push(body.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut bytes_read = 0;
        for w in bounds.windows(2) {
            let chunk = &body[w[0]..w[1]];
            let result = counter.advance(chunk.len(), limit, |off, len| {
                bytes_read += len;
                Ok::<_, Infallible>(chunk[off..off + len].to_vec())
            });
            if let Err(FrameError::Oversized(o)) = result {
                return (counter, Some(o), bytes_read);
            }
        }
        (counter, None, bytes_read)
    }

    #[test]
    fn counts_messages_and_reads_only_prefixes() {
        let body = encode(&[b"hello", b"", &[7u8; 1000]]);
        let (c, err, read) = feed(&body, &[], None);
        assert_eq!((c.messages(), c.largest(), err, c.is_mid_message()), (3, 1000, None, false));
        assert_eq!(read, 15, "three prefixes, no payload");
    }

    #[test]
    fn a_message_at_the_limit_passes_one_over_does_not() {
        let body = encode(&[&[1u8; 100]]);
        assert_eq!(feed(&body, &[], Some(100)).1, None);
        assert_eq!(feed(&body, &[], Some(99)).1, Some(Oversized { size: 100, limit: 99 }));
    }

    #[test]
    fn oversized_is_seen_before_the_payload() {
        let mut body = encode(&[&[0u8; 10]]);
        body[1..5].copy_from_slice(&(200u32 << 20).to_be_bytes());
        let (_, err, read) = feed(&body[..5], &[2], Some(128 << 20));
        assert_eq!(err, Some(Oversized { size: 200 << 20, limit: 128 << 20 }));
        assert_eq!(read, 5);
    }

    #[test]
    fn truncated_and_lying_prefixes() {
        let body = encode(&[b"abc"]);
        assert!(feed(&body[..3], &[], None).0.is_mid_message(), "ends mid-prefix");
        assert!(feed(&body[..6], &[], None).0.is_mid_message(), "ends mid-payload");
        let mut lying = body.clone();
        lying[4] = 200;
        let (c, err, _) = feed(&lying, &[], None);
        assert!(c.is_mid_message() && err.is_none());
    }

    #[test]
    fn short_reads_and_read_errors() {
        let body = encode(&[b"abcdef"]);
        let mut c = FrameCounter::default();
        c.advance(body.len(), None, |off, len| Ok::<_, Infallible>(body[off..off + len.min(1)].to_vec())).unwrap();
        assert_eq!(c.messages(), 1);
        let mut c = FrameCounter::default();
        assert_eq!(c.advance(5, None, |_, _| Err("gone")), Err(FrameError::Read("gone")));
    }

    proptest! {
        /// However the stream is cut into chunks, the verdict and the counts are the same.
        #[test]
        fn chunking_never_changes_the_verdict(
            sizes in proptest::collection::vec(0usize..300, 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            limit in proptest::option::of(0u64..300),
        ) {
            let messages: Vec<Vec<u8>> = sizes.iter().map(|n| vec![0xAB; *n]).collect();
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let body = encode(&refs);
            let (whole, whole_err, _) = feed(&body, &[], limit);
            let (cut, cut_err, _) = feed(&body, &cuts, limit);
            prop_assert_eq!(whole_err, cut_err);
            prop_assert_eq!(whole.messages(), cut.messages());
            let want = sizes.iter().position(|s| limit.is_some_and(|l| *s as u64 > l));
            prop_assert_eq!(whole_err.is_some(), want.is_some());
            if whole_err.is_none() {
                prop_assert_eq!(whole.messages(), sizes.len() as u64);
                prop_assert!(!whole.is_mid_message());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let _ = feed(&body, &cuts, Some(16));
        }
    }
}
