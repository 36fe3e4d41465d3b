//! The migration copy's ingest entries, encoded once: the `RAFTKV.SLOTS.INGEST FENCE <id>
//! (<cf> <key> <value>)...` proposal (an encoded `Argv`, the bytes `crate::sm::encode_argv`
//! makes of it) written straight from a remote source's export reply, as RESP bytes, or
//! from a local export's records. No `Reply` tree, no per-record buffers and no second
//! encoding in between: the coordinator copies each record's bytes once (profile of
//! session 12: decoding the reply into bulks, collecting them into records and encoding
//! the argument vector again were three copies and several allocations per record).

use bytes::Bytes;
use resp::relayed::header;

/// The entry's name, its first argument.
const INGEST: &[u8] = b"RAFTKV.SLOTS.INGEST";

/// One chunk ready to propose to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The encoded `Argv` of the `RAFTKV.SLOTS.INGEST`.
    pub data: Vec<u8>,
    /// Records in it.
    pub records: u64,
    /// Bytes of its keys and values (what the copy's counters and pacing count).
    pub bytes: u64,
    /// A piece of a record bigger than a chunk (family word `<cf>:<off>:<total>`, see
    /// `store::pieces`): pieces go one after the other.
    pub piece: bool,
}

/// Appends one `Argv.args` field (protobuf field 1, length-delimited) holding `b`.
fn put_arg(out: &mut Vec<u8>, b: &[u8]) {
    out.push(0x0a);
    let mut n = b.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(b);
}

impl Entry {
    /// An entry of migration `id` with no records yet, with room for `cap` bytes of them.
    fn start(id: u64, cap: usize) -> Entry {
        let mut data = Vec::with_capacity(cap + 64);
        put_arg(&mut data, INGEST);
        put_arg(&mut data, b"FENCE");
        put_arg(&mut data, id.to_string().as_bytes());
        Entry {
            data,
            records: 0,
            bytes: 0,
            piece: false,
        }
    }

    /// Adds one record.
    fn push(&mut self, cf: &[u8], key: &[u8], value: &[u8]) {
        for b in [cf, key, value] {
            put_arg(&mut self.data, b);
        }
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.piece |= cf.contains(&b':');
    }

    /// Migration `id`'s entry of a local export's records.
    pub fn from_records(id: u64, records: &[(Bytes, Bytes, Bytes)]) -> Entry {
        let size = records
            .iter()
            .map(|(c, k, v)| c.len() + k.len() + v.len() + 15)
            .sum();
        let mut e = Entry::start(id, size);
        for (cf, k, v) in records {
            e.push(cf, k, v);
        }
        e
    }

    /// Migration `id`'s entry of a remote export reply (`*<1+3n>`, the next cursor's bulk,
    /// then `cf key value` bulks: `super::copy`'s `encode_chunk`), and the next cursor
    /// (`None`: done). An error reply, or bytes of any other shape, is an error.
    pub fn from_reply(id: u64, raw: &[u8]) -> Result<(Entry, Option<Vec<u8>>), String> {
        if raw.first() == Some(&b'-') {
            let text = String::from_utf8_lossy(raw);
            return Err(format!("export failed: {}", text.trim_end()));
        }
        let shown = || String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
        let (n, mut at) =
            header(raw, 0, b'*').ok_or_else(|| format!("bad export reply {:?}", shown()))?;
        if n == 0 || !(n - 1).is_multiple_of(3) {
            return Err(format!("truncated export reply ({n} items)"));
        }
        let mut bulk = || {
            let (len, start) = header(raw, at, b'$')?;
            let end = start.checked_add(len)?;
            (raw.get(end..end.checked_add(2)?)? == b"\r\n").then_some(())?;
            at = end + 2;
            Some(&raw[start..end])
        };
        let bad = || format!("bad export item in {:?}", shown());
        let cursor = bulk().ok_or_else(bad)?;
        let mut e = Entry::start(id, raw.len());
        for _ in 0..(n - 1) / 3 {
            let (cf, k, v) = (bulk(), bulk(), bulk());
            let (Some(cf), Some(k), Some(v)) = (cf, k, v) else {
                return Err(bad());
            };
            e.push(cf, k, v);
        }
        if at != raw.len() {
            return Err(format!(
                "export reply with {} bytes after it",
                raw.len() - at
            ));
        }
        Ok((e, (!cursor.is_empty()).then(|| cursor.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use resp::Reply;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    /// The export reply's RESP bytes, as a source's `serve_export` writes them.
    fn reply_bytes(next: &[u8], records: &[(Bytes, Bytes, Bytes)]) -> Vec<u8> {
        let mut items = vec![Reply::Bulk(b(next))];
        for (c, k, v) in records {
            items.extend([
                Reply::Bulk(c.clone()),
                Reply::Bulk(k.clone()),
                Reply::Bulk(v.clone()),
            ]);
        }
        let mut out = BytesMut::new();
        resp::encode::encode(&Reply::Array(items), resp::Protocol::Resp2, &mut out);
        out.to_vec()
    }

    /// The entry the copy proposed before relaying: an argument vector, encoded.
    fn argv_entry(id: u64, records: &[(Bytes, Bytes, Bytes)]) -> Vec<u8> {
        let mut argv = vec![b(INGEST), b(b"FENCE"), Bytes::from(id.to_string())];
        for (c, k, v) in records {
            argv.extend([c.clone(), k.clone(), v.clone()]);
        }
        crate::sm::encode_argv(&argv)
    }

    #[test]
    fn a_relayed_export_reply_proposes_the_same_entry_as_decoding_and_encoding_it() {
        let big = vec![7u8; 300];
        let records = vec![
            (b(b"data"), b(b"\x00\x01k\r\n"), b(b"")),
            (b(b"sub"), b(b"\x00\x02x"), b(&big)),
            (b(b"zscore"), b(&[1u8; 200]), b(b"$3\r\n")),
        ];
        for next in [&b"\x00\x00\x03k"[..], b""] {
            let raw = reply_bytes(next, &records);
            let (e, cursor) = Entry::from_reply(42, &raw).unwrap();
            assert_eq!(e.data, argv_entry(42, &records));
            assert_eq!(e, Entry::from_records(42, &records));
            assert_eq!(
                (e.records, e.bytes, e.piece),
                (3, 5 + 3 + 300 + 200 + 4, false)
            );
            assert_eq!(cursor, (!next.is_empty()).then(|| next.to_vec()));
            let argv = crate::sm::decode_argv(&e.data).unwrap();
            let cmd = resp::Command::parse_replicated(&argv).unwrap();
            assert_eq!(
                cmd,
                resp::Command::SlotsIngest {
                    fence: 42,
                    records: records.clone()
                }
            );
        }
        let piece = vec![(b(b"data:0:900"), b(b"\x00\x01k"), b(b"xx"))];
        assert!(
            Entry::from_reply(1, &reply_bytes(b"c", &piece))
                .unwrap()
                .0
                .piece
        );
        let (empty, done) = Entry::from_reply(1, &reply_bytes(b"", &[])).unwrap();
        assert_eq!((empty.records, done), (0, None));
        // Anything else is refused: errors, truncated or extra bytes, wrong item counts.
        let raw = reply_bytes(b"", &records);
        for bad in [
            &b"-ERR export failed: x\r\n"[..],
            &raw[..raw.len() - 1],
            &[&raw[..], b"+OK\r\n"].concat(),
            b"*2\r\n$0\r\n\r\n$1\r\na\r\n",
            b"*0\r\n",
            b":1\r\n",
        ] {
            assert!(
                Entry::from_reply(1, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
