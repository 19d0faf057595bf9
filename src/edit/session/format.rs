//! The session's files byte for byte, and nothing else (no file is opened here): the
//! snapshot (magic, JSON header, deflated z slabs, CRC), the journal (magic, JSON header,
//! CRC, then records of deflated bricks, each with its length and CRC) and how each is
//! read back, damaged parts included.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::volume::Geometry;

pub(super) const SNAPSHOT: &str = "mask.hvsnap";
pub(super) const JOURNAL: &str = "journal.hvj";
pub(super) const MANIFEST: &str = "manifest.json";
/// Held by the one viewer writing this session: `<pid> <token>`.
pub(super) const LOCK: &str = "writer.lock";
pub(super) const SNAP_MAGIC: &[u8; 8] = b"HVSNAP01";
pub(super) const JOURNAL_MAGIC: &[u8; 8] = b"HVJRNL01";
pub(super) const RECORD_MAGIC: &[u8; 4] = b"HVR1";
/// z slices per deflated chunk of a snapshot (chunks compress in parallel).
pub(super) const SLAB: usize = 8;

/// Header of a snapshot (JSON inside the file).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SnapHeader {
    pub(super) geometry: Geometry,
    pub(super) edit_counter: u64,
    /// Journal records up to this sequence number are in the snapshot.
    pub(super) last_seq: u64,
    pub(super) written_unix_ms: u64,
    pub(super) slab: usize,
    pub(super) chunk_lens: Vec<u64>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct JournalHeader {
    pub(super) shape: [usize; 3],
    /// Records after this sequence number follow.
    pub(super) base_seq: u64,
}

/// Each `SLAB` z slices of `data`, deflated (in parallel).
pub(super) fn deflate_slabs(data: &Array3<u8>) -> Vec<Vec<u8>> {
    let std_data;
    let data: &Array3<u8> = if data.is_standard_layout() {
        data
    } else {
        std_data = data.as_standard_layout().into_owned();
        &std_data
    };
    data.axis_chunks_iter(Axis(0), SLAB)
        .into_par_iter()
        .map(|slab| {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            match slab.as_slice() {
                Some(s) => {
                    let _ = enc.write_all(s);
                }
                None => {
                    let v: Vec<u8> = slab.iter().copied().collect();
                    let _ = enc.write_all(&v);
                }
            }
            enc.finish().unwrap_or_default()
        })
        .collect()
}

/// A snapshot's bytes: magic, header length, JSON header, the deflated slabs, CRC.
pub(super) fn snapshot_bytes(header: &SnapHeader, chunks: &[Vec<u8>]) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(header)?;
    let mut bytes = Vec::with_capacity(16 + json.len() + chunks.iter().map(Vec::len).sum::<usize>());
    bytes.extend_from_slice(SNAP_MAGIC);
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    for c in chunks {
        bytes.extend_from_slice(c);
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// One journal record: magic, payload length, CRC, then the payload (sequence number,
/// edit counter, brick count, and each brick's id, deflated length and deflated bytes).
pub(super) fn record_bytes(seq: u64, edit_counter: u64, contents: BTreeMap<u32, Vec<u8>>) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&edit_counter.to_le_bytes());
    payload.extend_from_slice(&(contents.len() as u32).to_le_bytes());
    let deflated: Vec<(u32, Vec<u8>)> = contents
        .into_par_iter()
        .map(|(id, bytes)| {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = enc.write_all(&bytes);
            (id, enc.finish().unwrap_or_default())
        })
        .collect();
    for (id, z) in &deflated {
        payload.extend_from_slice(&id.to_le_bytes());
        payload.extend_from_slice(&(z.len() as u32).to_le_bytes());
        payload.extend_from_slice(z);
    }
    let mut rec = Vec::with_capacity(12 + payload.len());
    rec.extend_from_slice(RECORD_MAGIC);
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    rec.extend_from_slice(&payload);
    rec
}

/// The header and the deflated body of a snapshot's bytes, or what is wrong with them.
pub(super) fn parse_snapshot(bytes: &[u8]) -> Result<(SnapHeader, &[u8]), String> {
    if bytes.len() < 16 || &bytes[..8] != SNAP_MAGIC {
        return Err("not a Hepaview snapshot".into());
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(content).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let hlen = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let json = content.get(12..12 + hlen).ok_or("header cut short")?;
    let header: SnapHeader = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok((header, &content[12 + hlen..]))
}

/// Reads a journal's bytes: whole records (their bricks too when `with_bricks`), where
/// the whole records end, and whether a torn record follows; `snap_seq`: the sequence
/// number the snapshot includes (records after it are counted as newer).
pub(super) fn scan_journal(bytes: &[u8], snap_seq: u64, with_bricks: bool) -> JournalScan {
    let mut scan = JournalScan {
        shape: None,
        records: Vec::new(),
        last: None,
        newer: 0,
        good_len: 0,
        torn: false,
        spans: Vec::new(),
        seqs: Vec::new(),
        damaged_bytes: 0,
        damaged_regions: 0,
        damaged_header: false,
    };
    if bytes.is_empty() {
        return scan;
    }
    // header; a damaged one costs no record (the grid is the snapshot's then)
    let hlen = bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let header_ok =
        bytes.len() >= 16 && &bytes[..8] == JOURNAL_MAGIC && hlen.is_some_and(|h| h <= bytes.len() - 16) && {
            let h = hlen.unwrap_or(0);
            crc32fast::hash(&bytes[..12 + h]).to_le_bytes() == bytes[12 + h..16 + h]
        };
    let mut at = 0;
    if header_ok {
        let hlen = hlen.unwrap_or(0);
        if let Ok(jh) = serde_json::from_slice::<JournalHeader>(&bytes[12..12 + hlen]) {
            scan.shape = Some(jh.shape);
            at = 16 + hlen;
        } else {
            scan.damaged_header = true;
        }
    } else {
        scan.damaged_header = true;
    }
    scan.good_len = at as u64;
    while at < bytes.len() {
        let rec = if scan.damaged_header && at == 0 { None } else { parse_record(&bytes[at..], with_bricks) };
        let Some(rec) = rec else {
            // damaged here: go on at the next intact record, if any
            match next_record(bytes, at + 1) {
                Some(next) => {
                    if !(scan.damaged_header && at == 0) {
                        scan.damaged_bytes += next - at;
                        scan.damaged_regions += 1;
                    }
                    at = next;
                    continue;
                }
                None => {
                    scan.torn = !(scan.damaged_header && at == 0) || scan.spans.is_empty() && bytes.len() > 16;
                    break;
                }
            }
        };
        scan.spans.push((at, rec.len));
        scan.seqs.push(rec.seq);
        at += rec.len;
        scan.good_len = at as u64;
        scan.last = Some((rec.seq, rec.counter));
        if rec.seq > snap_seq {
            scan.newer += 1;
        }
        if with_bricks {
            scan.records.push(rec);
        }
    }
    scan
}

/// Whether a snapshot's chunk table fits its grid and its `body_len` bytes of data.
pub(super) fn chunks_fit(header: &SnapHeader, body_len: usize) -> bool {
    let total = header.chunk_lens.iter().try_fold(0u64, |a, &l| a.checked_add(l));
    total.is_some_and(|t| t <= body_len as u64)
        && header.chunk_lens.len() == header.geometry.shape[0].div_ceil(header.slab.max(1))
}

pub(super) struct JournalScan {
    pub(super) shape: Option<[usize; 3]>,
    pub(super) records: Vec<Record>,
    pub(super) last: Option<(u64, u64)>,
    pub(super) newer: usize,
    pub(super) good_len: u64,
    pub(super) torn: bool,
    /// (start, length) in the file of every intact record, and their sequence numbers.
    pub(super) spans: Vec<(usize, usize)>,
    pub(super) seqs: Vec<u64>,
    /// Bytes skipped between intact records, and in how many runs.
    pub(super) damaged_bytes: usize,
    pub(super) damaged_regions: usize,
    /// The header was unreadable (its grid is then the snapshot's).
    pub(super) damaged_header: bool,
}

/// The first offset at or after `from` where an intact record starts.
fn next_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(11))
        .find(|&i| &bytes[i..i + 4] == RECORD_MAGIC && parse_record(&bytes[i..], false).is_some())
}

/// A journal's header: magic, JSON length, JSON (grid shape, base sequence), CRC.
pub(super) fn journal_header_bytes(shape: [usize; 3], base_seq: u64) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(&JournalHeader { shape, base_seq }).map_err(io::Error::other)?;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(JOURNAL_MAGIC);
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    Ok(bytes)
}

pub(super) struct Record {
    pub(super) len: usize,
    pub(super) seq: u64,
    pub(super) counter: u64,
    pub(super) bricks: Vec<(u32, Vec<u8>)>,
}

/// One whole record at the start of `b`, or `None` if it is cut short or damaged.
fn parse_record(b: &[u8], with_bricks: bool) -> Option<Record> {
    if b.len() < 12 || &b[..4] != RECORD_MAGIC {
        return None;
    }
    let plen = u32::from_le_bytes(b[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(b[8..12].try_into().ok()?);
    let payload = b.get(12..12 + plen)?;
    if crc32fast::hash(payload) != crc || plen < 20 {
        return None;
    }
    let seq = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    let counter = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    let n = u32::from_le_bytes(payload[16..20].try_into().ok()?) as usize;
    let mut bricks = Vec::new();
    if with_bricks {
        let mut at = 20;
        for _ in 0..n {
            let id = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?);
            let zl = u32::from_le_bytes(payload.get(at + 4..at + 8)?.try_into().ok()?) as usize;
            let z = payload.get(at + 8..at + 8 + zl)?;
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(z).read_to_end(&mut out).ok()?;
            bricks.push((id, out));
            at += 8 + zl;
        }
    }
    Some(Record { len: 12 + plen, seq, counter, bricks })
}
