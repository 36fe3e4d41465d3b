//! Function libraries (FUNCTION LOAD / DELETE / FLUSH / RESTORE / LIST / DUMP / STATS and
//! FCALL's lookup). Payloads are stored in `scripts` under `l<name>` (see
//! [`crate::scripting`]); the store keeps them decoded ([`Libraries`]: loaded at open and
//! after a snapshot restore, changed by the apply path, published to readers once the
//! batch is written). Names of libraries and functions are matched case-insensitively, as
//! in Redis.
//!
//! FUNCTION DUMP's payload is Redis's: per library the RDB opcode 245 and the code as an
//! RDB string, then RDB version 10 and the CRC-64 (Jones) of all before it, little endian.
//! RESTORE also reads LZF-compressed and integer-encoded RDB strings, so payloads dumped
//! by Redis 7.0 restore here.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use resp::{FunctionCmd, Reply, RestorePolicy};
use rocksdb::WriteBatch;

use crate::scripting::{group_tag, Target, CF_SCRIPTS};
use crate::{fail_stop, glob_match, Reader, Store};

const RDB_OPCODE_FUNCTION2: u8 = 245;
const RDB_VERSION: u16 = 10;

fn lib_key(group: u64, name: &str) -> Vec<u8> {
    let mut k = group_tag(group, b'l');
    k.extend_from_slice(name.to_ascii_lowercase().as_bytes());
    k
}

/// Every library, by lower-case name.
#[derive(Default, Clone)]
pub struct Libraries {
    libs: BTreeMap<String, script::Library>,
}

impl Libraries {
    /// The library and info of function `name`.
    fn function(&self, name: &str) -> Option<(&script::Library, &script::FunctionInfo)> {
        self.libs.values().find_map(|l| {
            l.functions
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| (l, f))
        })
    }

    /// The flags of function `name` (routing: a `no-writes` function runs as a read).
    pub fn function_flags(&self, name: &[u8]) -> Option<script::Flags> {
        self.function(&String::from_utf8_lossy(name))
            .map(|(_, f)| f.flags)
    }

    /// What FCALL `name` runs.
    pub(crate) fn target(&self, name: &[u8]) -> Result<Target, Reply> {
        let name = String::from_utf8_lossy(name);
        let (lib, f) = self
            .function(&name)
            .ok_or_else(|| Reply::err("ERR Function not found"))?;
        Ok(Target {
            code: lib.code.clone(),
            function: Some(f.name.clone()),
            flags: f.flags,
            name: f.name.clone(),
        })
    }

    /// Adds `lib` (replacing one of the same name when `replace`), or Redis's error.
    fn add(&mut self, lib: script::Library, replace: bool) -> Result<(), String> {
        let key = lib.name.to_ascii_lowercase();
        if self.libs.contains_key(&key) && !replace {
            return Err(format!("Library '{}' already exists", lib.name));
        }
        for f in &lib.functions {
            if let Some((other, _)) = self.function(&f.name) {
                if other.name.to_ascii_lowercase() != key {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
        }
        self.libs.insert(key, lib);
        Ok(())
    }

    fn list(&self, pattern: Option<&Bytes>, with_code: bool) -> Reply {
        let b = |s: &str| Reply::bulk(s.to_string());
        let libs = self
            .libs
            .values()
            .filter(|l| pattern.is_none_or(|p| glob_match(p, l.name.as_bytes(), true)));
        Reply::Array(
            libs.map(|l| {
                let functions = l
                    .functions
                    .iter()
                    .map(|f| {
                        Reply::Map(vec![
                            (b("name"), b(&f.name)),
                            (
                                b("description"),
                                f.description.as_deref().map_or(Reply::Nil, b),
                            ),
                            (
                                b("flags"),
                                Reply::Set(
                                    f.flags
                                        .names()
                                        .into_iter()
                                        .map(|n| Reply::Status(n.into()))
                                        .collect(),
                                ),
                            ),
                        ])
                    })
                    .collect();
                let mut m = vec![
                    (b("library_name"), b(&l.name)),
                    (b("engine"), b("LUA")),
                    (b("functions"), Reply::Array(functions)),
                ];
                if with_code {
                    m.push((b("library_code"), Reply::Bulk(l.code.clone())));
                }
                Reply::Map(m)
            })
            .collect(),
        )
    }

    fn stats(&self) -> Reply {
        let n: usize = self.libs.values().map(|l| l.functions.len()).sum();
        Reply::Map(vec![
            (Reply::bulk("running_script"), Reply::Nil),
            (
                Reply::bulk("engines"),
                Reply::Map(vec![(
                    Reply::bulk("LUA"),
                    Reply::Map(vec![
                        (
                            Reply::bulk("libraries_count"),
                            Reply::Int(self.libs.len() as i64),
                        ),
                        (Reply::bulk("functions_count"), Reply::Int(n as i64)),
                    ]),
                )]),
            ),
        ])
    }

    fn dump(&self) -> Reply {
        let mut out = Vec::new();
        for l in self.libs.values() {
            out.push(RDB_OPCODE_FUNCTION2);
            rdb_len(&mut out, l.code.len() as u64);
            out.extend_from_slice(&l.code);
        }
        out.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Reply::Bulk(Bytes::from(out))
    }
}

/// CRC-64 Jones (reflected), as Redis's `crc64`.
pub(crate) fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x95AC_9329_AC4B_C9B5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn rdb_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An RDB length, or the special-encoding marker (`Err(kind)`).
fn read_len(p: &[u8], at: &mut usize) -> Option<Result<u64, u8>> {
    let b = *p.get(*at)?;
    *at += 1;
    Some(match b >> 6 {
        0 => Ok(u64::from(b & 0x3f)),
        1 => {
            let lo = *p.get(*at)?;
            *at += 1;
            Ok((u64::from(b & 0x3f) << 8) | u64::from(lo))
        }
        3 => Err(b & 0x3f),
        _ if b == 0x80 => {
            let v = u32::from_be_bytes(p.get(*at..*at + 4)?.try_into().ok()?);
            *at += 4;
            Ok(u64::from(v))
        }
        _ if b == 0x81 => {
            let v = u64::from_be_bytes(p.get(*at..*at + 8)?.try_into().ok()?);
            *at += 8;
            Ok(v)
        }
        _ => return None,
    })
}

/// LZF decompression (`lzf_d.c`), for RDB strings Redis compressed. A claimed length past
/// what the input could expand to (at most 264 bytes per 2 input bytes) is malformed.
fn lzf(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if out_len > input.len().saturating_mul(132).saturating_add(32) {
        return None;
    }
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            out.extend_from_slice(input.get(i..i + ctrl + 1)?);
            i += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for j in 0..len + 2 {
                out.push(out[start + j]);
            }
        }
        if out.len() > out_len {
            return None;
        }
    }
    (out.len() == out_len).then_some(out)
}

fn read_string(p: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    match read_len(p, at)? {
        Ok(n) => {
            let n = usize::try_from(n).ok()?;
            let s = p.get(*at..at.checked_add(n)?)?.to_vec();
            *at += n;
            Some(s)
        }
        Err(0) => {
            let v = *p.get(*at)? as i8;
            *at += 1;
            Some(v.to_string().into_bytes())
        }
        Err(1) => {
            let v = i16::from_le_bytes(p.get(*at..*at + 2)?.try_into().ok()?);
            *at += 2;
            Some(v.to_string().into_bytes())
        }
        Err(2) => {
            let v = i32::from_le_bytes(p.get(*at..*at + 4)?.try_into().ok()?);
            *at += 4;
            Some(v.to_string().into_bytes())
        }
        Err(3) => {
            let clen = usize::try_from(read_len(p, at)?.ok()?).ok()?;
            let len = usize::try_from(read_len(p, at)?.ok()?).ok()?;
            let c = p.get(*at..at.checked_add(clen)?)?;
            *at += clen;
            lzf(c, len)
        }
        Err(_) => None,
    }
}

/// The library payloads of a FUNCTION DUMP payload, or Redis's error text.
fn parse_dump(p: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bad = || "DUMP payload version or checksum are wrong".to_string();
    if p.len() < 10 {
        return Err(bad());
    }
    let body = &p[..p.len() - 10];
    let ver = u16::from_le_bytes([p[p.len() - 10], p[p.len() - 9]]);
    let crc = u64::from_le_bytes(p[p.len() - 8..].try_into().map_err(|_| bad())?);
    if ver > RDB_VERSION || crc64(&p[..p.len() - 8]) != crc {
        return Err(bad());
    }
    let mut at = 0;
    let mut out = Vec::new();
    while at < body.len() {
        if body[at] != RDB_OPCODE_FUNCTION2 {
            return Err("given type is not a function".into());
        }
        at += 1;
        out.push(read_string(body, &mut at).ok_or("failed loading the given functions payload")?);
    }
    Ok(out)
}

impl Store {
    /// Loads every stored library (open, snapshot restore).
    pub(crate) fn reload_libraries(&mut self) {
        let db = self.db.clone();
        let cf = self.cf(CF_SCRIPTS);
        let mut payloads = Vec::new();
        let mut it = db.raw_iterator_cf(cf);
        let start = group_tag(self.group, b'l');
        it.seek(&start);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&start) {
                break;
            }
            payloads.push(v.to_vec());
            it.next();
        }
        if let Err(e) = it.status() {
            fail_stop("reading function libraries", e);
        }
        drop(it);
        let mut engine = self.engine();
        let mut libs = Libraries::default();
        for p in payloads {
            if let Ok(lib) = engine.load_library(&p) {
                let _ = libs.add(lib, true);
            }
        }
        self.engine = Some(engine);
        self.libs = libs;
        self.libs_changed = true;
        self.publish_libraries();
    }

    /// Publishes the libraries to readers if the apply path changed them.
    pub(crate) fn publish_libraries(&mut self) {
        if std::mem::take(&mut self.libs_changed) {
            *self
                .shared
                .libraries
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Arc::new(self.libs.clone());
        }
    }

    fn store_library(&mut self, wb: &mut WriteBatch, lib: &script::Library) {
        wb.put_cf(
            self.cf(CF_SCRIPTS),
            lib_key(self.group, &lib.name),
            &lib.code,
        );
    }

    fn function_load(&mut self, wb: &mut WriteBatch, code: &[u8], replace: bool) -> Reply {
        let mut engine = self.engine();
        let lib = engine.load_library(code);
        self.engine = Some(engine);
        let lib = match lib {
            Ok(l) => l,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        let mut libs = self.libs.clone();
        if let Err(e) = libs.add(lib.clone(), replace) {
            return Reply::err(format!("ERR {e}"));
        }
        self.store_library(wb, &lib);
        self.libs = libs;
        self.libs_changed = true;
        Reply::bulk(lib.name)
    }

    fn function_restore(
        &mut self,
        wb: &mut WriteBatch,
        payload: &[u8],
        policy: RestorePolicy,
    ) -> Reply {
        let codes = match parse_dump(payload) {
            Ok(c) => c,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        let mut engine = self.engine();
        let mut fresh = Libraries::default();
        let mut failed = None;
        for c in &codes {
            match engine.load_library(c).and_then(|l| fresh.add(l, false)) {
                Ok(()) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.engine = Some(engine);
        if let Some(e) = failed {
            return Reply::err(format!("ERR {e}"));
        }
        let mut libs = match policy {
            RestorePolicy::Flush => Libraries::default(),
            _ => self.libs.clone(),
        };
        for lib in fresh.libs.values() {
            let key = lib.name.to_ascii_lowercase();
            if libs.libs.contains_key(&key) && policy == RestorePolicy::Append {
                return Reply::err(format!("ERR Library {} already exists", lib.name));
            }
            libs.libs.remove(&key);
        }
        for lib in fresh.libs.into_values() {
            if let Err(e) = libs.add(lib, false) {
                return Reply::err(format!("ERR {e}"));
            }
        }
        if policy == RestorePolicy::Flush {
            wb.delete_range_cf(
                self.cf(CF_SCRIPTS),
                group_tag(self.group, b'l'),
                group_tag(self.group, b'm'),
            );
        }
        for lib in libs.libs.values() {
            self.store_library(wb, lib);
        }
        self.libs = libs;
        self.libs_changed = true;
        Reply::ok()
    }

    /// Applies a FUNCTION subcommand (the reads too, in a write entry).
    pub(crate) fn apply_function(&mut self, wb: &mut WriteBatch, f: &FunctionCmd) -> Reply {
        match f {
            FunctionCmd::Load { replace, code } => self.function_load(wb, code, *replace),
            FunctionCmd::Delete(name) => {
                let key = String::from_utf8_lossy(name).to_ascii_lowercase();
                if self.libs.libs.remove(&key).is_none() {
                    return Reply::err("ERR Library not found");
                }
                wb.delete_cf(self.cf(CF_SCRIPTS), lib_key(self.group, &key));
                self.libs_changed = true;
                Reply::ok()
            }
            FunctionCmd::Flush => {
                wb.delete_range_cf(
                    self.cf(CF_SCRIPTS),
                    group_tag(self.group, b'l'),
                    group_tag(self.group, b'm'),
                );
                self.libs = Libraries::default();
                self.libs_changed = true;
                Reply::ok()
            }
            FunctionCmd::Restore { payload, policy } => self.function_restore(wb, payload, *policy),
            FunctionCmd::List { pattern, with_code } => {
                self.libs.list(pattern.as_ref(), *with_code)
            }
            FunctionCmd::Dump => self.libs.dump(),
            FunctionCmd::Stats => self.libs.stats(),
            FunctionCmd::Kill | FunctionCmd::Help => Reply::err("ERR not a replicated command"),
        }
    }
}

impl Reader {
    /// The libraries as of the last written batch.
    pub fn libraries(&self) -> Arc<Libraries> {
        self.counters
            .libraries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// FUNCTION LIST / DUMP / STATS.
    pub(crate) fn function_read(&self, f: &FunctionCmd) -> Reply {
        let libs = self.libraries();
        match f {
            FunctionCmd::List { pattern, with_code } => libs.list(pattern.as_ref(), *with_code),
            FunctionCmd::Dump => libs.dump(),
            FunctionCmd::Stats => libs.stats(),
            other => Reply::err(format!("ERR '{other:?}' is not a read")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_jones() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn dumps_parse_back_and_lzf_strings_decode() {
        let mut libs = Libraries::default();
        let mut e = script::Engine::new();
        let code = "#!lua name=l1\nredis.register_function('f', function() return 1 end)";
        libs.add(e.load_library(code.as_bytes()).unwrap(), false)
            .unwrap();
        let Reply::Bulk(p) = libs.dump() else {
            panic!()
        };
        assert_eq!(parse_dump(&p), Ok(vec![code.as_bytes().to_vec()]));
        let mut bad = p.to_vec();
        bad[3] ^= 1;
        assert!(parse_dump(&bad).is_err());
        // "aaaaaaaaaa" as LZF: a literal 'a', then a back reference of length 9 at distance 1.
        assert_eq!(
            lzf(&[0x00, b'a', 0xe0, 0x00, 0x00], 10),
            Some(b"aaaaaaaaaa".to_vec())
        );
        assert!(libs.function("F").is_some());
        assert!(
            matches!(libs.list(Some(&Bytes::from("L*")), false), Reply::Array(v) if v.len() == 1)
        );
    }
}
