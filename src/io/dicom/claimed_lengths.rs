//! Every element's claimed value length against the bytes the file really holds, checked
//! before dicom-rs parses the file.
//!
//! Why: dicom-rs allocates and fills a buffer of the length an element claims and only then
//! finds the bytes missing. A 100 kB file whose one element claims 3.7 GB took 3.6 GB of
//! memory and 1.8 s to refuse (found by fuzzing; docs/fuzzing.md). The walk here reads only
//! element headers and seeks over values, so it costs one pass over the headers, and a file
//! that fails it is refused before anything of its claimed size is reserved.
//!
//! It reads headers the way dicom-rs does (VR letters that name no VR are UN, with a
//! 4-byte length; the meta group by its group length; the contents of UN of undefined
//! length in implicit VR up to its delimiter; implicit sequences by the standard
//! dictionary) and only refuses a length that dicom-rs would then fail to read, or an
//! undefined length on a VR that may never have one. What it cannot follow (a deflated
//! data set, a missing transfer syntax, OB/OW of undefined length outside Pixel Data) ends
//! the check and leaves the file to dicom-rs.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Where the elements start.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    /// A file meta group (explicit VR little endian) at `offset`, then the data set in the
    /// transfer syntax the meta group names.
    Meta { offset: u64 },
    /// A data set with no meta group, little endian.
    Dataset { offset: u64, explicit: bool },
}

/// An element whose value runs past the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Overrun {
    pub group: u16,
    pub element: u16,
    /// Byte offset of the element's header in the file.
    pub offset: u64,
    pub claimed: u64,
    pub left: u64,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "element ({:04X},{:04X}) at byte {} claims {} bytes of value, but only {} bytes are left in the file; \
             the file is damaged or was cut short",
            self.group, self.element, self.offset, self.claimed, self.left
        )
    }
}

const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM: u16 = 0xE000;
const SEQUENCE_DELIMITER: u16 = 0xE0DD;
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Walks the element headers of the file at `path` from `start`; with `stop_at_pixel_data`
/// the walk ends at the first Pixel Data element, as a header-only read does.
/// `Ok(None)`: nothing claims more than the file holds (or the walk could not tell).
pub(crate) fn find_overrun(path: &Path, start: Start, stop_at_pixel_data: bool) -> std::io::Result<Option<Overrun>> {
    match walk_file(path, start, stop_at_pixel_data) {
        // a header cut short at the end of the file: dicom-rs says that better
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        other => other,
    }
}

fn walk_file(path: &Path, start: Start, stop_at_pixel_data: bool) -> std::io::Result<Option<Overrun>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut walker = Walker { r: BufReader::new(file), pos: 0, len };
    match start {
        Start::Dataset { offset, explicit } => {
            walker.seek_to(offset)?;
            walker.walk(Encoding { explicit, big_endian: false }, stop_at_pixel_data, false)
        }
        Start::Meta { offset } => {
            walker.seek_to(offset)?;
            let transfer_syntax = match walker.walk_meta()? {
                MetaEnd::Overrun(o) => return Ok(Some(o)),
                MetaEnd::TransferSyntax(ts) => ts,
                MetaEnd::Unknown => return Ok(None),
            };
            let encoding = match transfer_syntax.as_str() {
                "1.2.840.10008.1.2" => Encoding { explicit: false, big_endian: false },
                "1.2.840.10008.1.2.2" => Encoding { explicit: true, big_endian: true },
                // deflated: the data set is a zlib stream, not headers
                "1.2.840.10008.1.2.1.99" => return Ok(None),
                _ => Encoding { explicit: true, big_endian: false },
            };
            walker.walk(encoding, stop_at_pixel_data, false)
        }
    }
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

enum MetaEnd {
    Overrun(Overrun),
    TransferSyntax(String),
    Unknown,
}

struct Walker {
    r: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Walker {
    fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.r.seek(SeekFrom::Start(offset))?;
        self.pos = offset;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        // seek_relative keeps the buffer when the target is inside it
        self.r.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u16(&mut self, big_endian: bool) -> std::io::Result<u16> {
        let b = self.bytes::<2>()?;
        Ok(if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32(&mut self, big_endian: bool) -> std::io::Result<u32> {
        let b = self.bytes::<4>()?;
        Ok(if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// The file meta group: explicit VR little endian, group 0002, ending where another
    /// group starts. Returns the transfer syntax it names.
    fn walk_meta(&mut self) -> std::io::Result<MetaEnd> {
        let mut transfer_syntax = None;
        // dicom-rs reads the group by its length, (0002,0000), when it comes first: an
        // element in it whose group number is damaged is still read as meta, and the
        // transfer syntax after it still counts
        let mut meta_end = None;
        if self.left() >= 12 {
            let at = self.pos;
            let head = self.bytes::<8>()?;
            if head[..4] == [0x02, 0x00, 0x00, 0x00] && &head[4..6] == b"UL" && head[6..8] == [4, 0] {
                let length = u64::from(self.u32(false)?);
                meta_end = Some(self.pos.saturating_add(length));
            } else {
                self.seek_to(at)?;
            }
        }
        while self.left() >= 8 {
            let at = self.pos;
            if meta_end.is_some_and(|end| at >= end) {
                break;
            }
            let group = self.u16(false)?;
            if group != 0x0002 && meta_end.is_none() {
                self.seek_to(at)?;
                break;
            }
            let element = self.u16(false)?;
            let (length, _) = self.explicit_header(false)?;
            if length == UNDEFINED {
                return Ok(MetaEnd::Unknown);
            }
            let length = u64::from(length);
            if length > self.left() {
                return Ok(MetaEnd::Overrun(Overrun {
                    group,
                    element,
                    offset: at,
                    claimed: length,
                    left: self.left(),
                }));
            }
            if element == 0x0010 && length <= 128 {
                let mut uid = vec![0u8; length as usize];
                self.r.read_exact(&mut uid)?;
                self.pos += length;
                let uid = String::from_utf8_lossy(&uid).trim_end_matches(['\0', ' ']).to_string();
                transfer_syntax = Some(uid);
            } else {
                self.skip(length)?;
            }
        }
        Ok(transfer_syntax.map_or(MetaEnd::Unknown, MetaEnd::TransferSyntax))
    }

    /// An explicit VR header after the tag: its length and its VR letters. Letters that
    /// name no VR are read as UN (a reserved field and a 4-byte length), as dicom-rs does.
    fn explicit_header(&mut self, big_endian: bool) -> std::io::Result<(u32, [u8; 2])> {
        let vr = self.bytes::<2>()?;
        match &vr {
            b"AE" | b"AS" | b"AT" | b"CS" | b"DA" | b"DS" | b"DT" | b"FL" | b"FD" | b"IS" | b"LO" | b"LT" | b"PN"
            | b"SH" | b"SL" | b"SS" | b"ST" | b"TM" | b"UI" | b"UL" | b"US" => {
                Ok((u32::from(self.u16(big_endian)?), vr))
            }
            _ => {
                self.skip(2)?;
                Ok((self.u32(big_endian)?, vr))
            }
        }
    }

    /// The data set, flat: sequences and items of undefined or defined length are walked
    /// into (their elements follow, each checked), other values are skipped once their
    /// length is checked.
    /// Inside encapsulated pixel data the items are fragments, so they are skipped too.
    fn walk(
        &mut self,
        outer: Encoding,
        stop_at_pixel_data: bool,
        mut in_fragments: bool,
    ) -> std::io::Result<Option<Overrun>> {
        // Inside UN of undefined length the elements are implicit VR little endian up to
        // its sequence delimiter, as dicom-rs reads them: `un_depth` counts the open
        // undefined-length sequences since the switch (0: not inside one).
        let implicit = Encoding { explicit: false, big_endian: false };
        let mut un_depth = 0usize;
        while self.left() >= 8 {
            let enc = if un_depth > 0 { implicit } else { outer };
            let at = self.pos;
            let group = self.u16(enc.big_endian)?;
            let element = self.u16(enc.big_endian)?;
            if stop_at_pixel_data && un_depth == 0 && (group, element) == PIXEL_DATA {
                return Ok(None);
            }
            // items and delimiters carry no VR in any encoding
            let (length, container) = if group == 0xFFFE {
                let length = self.u32(enc.big_endian)?;
                if element == SEQUENCE_DELIMITER {
                    in_fragments = false;
                    un_depth = un_depth.saturating_sub(1);
                }
                (length, element == ITEM && !in_fragments)
            } else if enc.explicit {
                let (length, vr) = self.explicit_header(enc.big_endian)?;
                if length != UNDEFINED && u64::from(length) <= self.left() {
                    if let Some(size) = binary_value_size(&vr) {
                        // dicom-rs reads whole numbers of values and leaves a remainder
                        // (an AT of 10 bytes: two tags) unread, so the next header starts
                        // inside this value, and so does the walk
                        self.skip(u64::from(length) / size * size)?;
                        continue;
                    }
                }
                if length == UNDEFINED && &vr != b"SQ" && (group, element) != PIXEL_DATA {
                    if never_undefined(&vr) {
                        // a value that can only have a defined length (a damaged sequence
                        // header, say): dicom-rs takes 0xFFFFFFFF as its length and fills
                        // gigabytes before it meets the end of the file
                        return Ok(Some(Overrun {
                            group,
                            element,
                            offset: at,
                            claimed: u64::from(UNDEFINED),
                            left: self.left(),
                        }));
                    }
                    if matches!(&vr, b"OB" | b"OW") {
                        // encapsulated data outside Pixel Data: left to dicom-rs
                        return Ok(None);
                    }
                    // UN (or letters read as UN): a sequence in implicit VR follows
                    un_depth = 1;
                    continue;
                }
                (length, &vr == b"SQ")
            } else {
                let length = self.u32(enc.big_endian)?;
                if length == UNDEFINED && un_depth > 0 {
                    un_depth += 1;
                }
                // implicit VR: the dictionary says which elements are sequences
                (length, is_sequence(group, element))
            };
            if length == UNDEFINED {
                // a sequence, an item, or encapsulated pixel data: its contents follow
                if (group, element) == PIXEL_DATA && un_depth == 0 {
                    in_fragments = true;
                }
                continue;
            }
            if container {
                // dicom-rs parses a sequence's or item's elements one by one and reserves
                // nothing for the length it claims, so neither does this check
                continue;
            }
            let length = u64::from(length);
            if length > self.left() {
                return Ok(Some(Overrun { group, element, offset: at, claimed: length, left: self.left() }));
            }
            self.skip(length)?;
        }
        Ok(None)
    }
}

/// The size of one value of a binary VR, which dicom-rs reads as a whole number of them.
fn binary_value_size(vr: &[u8; 2]) -> Option<u64> {
    match vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"AT" | b"UL" | b"SL" | b"FL" | b"OF" | b"OL" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

/// Whether the standard dictionary names `(group, element)` a sequence (implicit VR data
/// carries no VR letters; dicom-rs reads a known sequence's items one by one).
fn is_sequence(group: u16, element: u16) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .is_some_and(|e| e.vr() == VirtualVr::Exact(dicom_core::VR::SQ))
}

/// Value representations with a 4-byte length that the standard never lets be undefined
/// (only SQ, UN, and OB/OW of encapsulated pixel data may be).
fn never_undefined(vr: &[u8; 2]) -> bool {
    matches!(vr, b"OD" | b"OF" | b"OL" | b"OV" | b"SV" | b"UV" | b"UC" | b"UR" | b"UT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_le(group: u16, element: u16, vr: &[u8; 2], value: &[u8], claimed: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        let n = claimed.unwrap_or(value.len() as u32);
        if matches!(vr, b"AT" | b"CS" | b"LO" | b"PN" | b"SH" | b"UI" | b"UL" | b"US") {
            out.extend_from_slice(&(n as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn part10(transfer_syntax: &str, data_set: &[u8]) -> Vec<u8> {
        let mut ts = transfer_syntax.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend(explicit_le(0x0002, 0x0001, b"OB", &[0, 1], None));
        out.extend(explicit_le(0x0002, 0x0010, b"UI", &ts, None));
        out.extend_from_slice(data_set);
        out
    }

    fn check(bytes: &[u8], start: Start, stop: bool) -> Option<Overrun> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.dcm");
        std::fs::write(&path, bytes).unwrap();
        find_overrun(&path, start, stop).unwrap()
    }

    /// Every file of the shared data (real studies and the odd-file collection): when the
    /// check refuses one, dicom-rs must fail on it too, so the check never costs a user a
    /// file that loaded before.
    #[test]
    fn no_file_dicom_rs_reads_whole_is_refused() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        if !root.is_dir() {
            assert!(std::env::var_os("CI").is_none(), "../shared/data is missing under CI");
            return;
        }
        let mut files = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        let (mut walked, mut refused) = (0, 0);
        for path in &files {
            let head = std::fs::read(path).unwrap_or_default();
            let start = if head.len() >= 132 && &head[128..132] == b"DICM" {
                Start::Meta { offset: 132 }
            } else {
                continue;
            };
            walked += 1;
            if let Some(overrun) = find_overrun(path, start, false).unwrap() {
                refused += 1;
                assert!(
                    dicom_object::open_file(path).is_err(),
                    "{}: refused ({overrun}) but dicom-rs reads it",
                    path.display()
                );
            }
        }
        eprintln!("{walked} Part 10 files walked, {refused} refused (dicom-rs fails on each too)");
        assert!(walked > 100, "only {walked} DICOM files found under ../shared/data");
    }

    #[test]
    fn an_element_claiming_more_than_the_file_holds_is_found() {
        let mut ds = explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ", None);
        ds.extend(explicit_le(0xFE20, 0x0DFF, b"OB", &[1, 2, 3, 4], Some(3_724_541_440)));
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let found = check(&file, Start::Meta { offset: 132 }, true).expect("overrun");
        assert_eq!((found.group, found.element, found.claimed), (0xFE20, 0x0DFF, 3_724_541_440));
        assert_eq!(found.left, 4);
        assert!(found.to_string().contains("(FE20,0DFF)"), "{found}");
    }

    #[test]
    fn a_sound_file_with_sequences_and_fragments_passes() {
        // a defined-length sequence holding one item, an undefined-length one, then
        // encapsulated pixel data whose fragments are skipped, not parsed as elements
        let inner = explicit_le(0x0008, 0x0100, b"SH", b"T-62000 ", None);
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        item.extend_from_slice(&inner);
        let mut ds = explicit_le(0x0008, 0x2218, b"SQ", &item, None);
        ds.extend(explicit_le(0x0040, 0x0260, b"SQ", &[], Some(UNDEFINED)));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend_from_slice(&inner);
        ds.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend(explicit_le(0x7FE0, 0x0010, b"OB", &[], Some(UNDEFINED)));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]); // empty offset table
                                                                     // a fragment whose bytes would read as an absurd element header
        let fragment = [0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0x7F];
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        ds.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
        ds.extend_from_slice(&fragment);
        ds.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let file = part10("1.2.840.10008.1.2.4.70", &ds);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, false), None);
    }

    #[test]
    fn pixel_data_cut_short_is_found_only_when_the_pixels_are_read() {
        let mut ds = explicit_le(0x0028, 0x0010, b"US", &[2, 0], None);
        ds.extend(explicit_le(0x7FE0, 0x0010, b"OW", &[0; 6], Some(8)));
        let file = part10("1.2.840.10008.1.2.1", &ds);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, true), None);
        let found = check(&file, Start::Meta { offset: 132 }, false).expect("overrun");
        assert_eq!((found.group, found.element), PIXEL_DATA);
    }

    #[test]
    fn implicit_and_big_endian_data_sets_are_walked_in_their_own_encoding() {
        // implicit VR little endian: tag, 4-byte length
        let mut ds = Vec::new();
        ds.extend_from_slice(&[0x10, 0x00, 0x10, 0x00]);
        ds.extend_from_slice(&4u32.to_le_bytes());
        ds.extend_from_slice(b"DOE ");
        ds.extend_from_slice(&[0x09, 0x00, 0x10, 0x10]);
        ds.extend_from_slice(&1_000_000u32.to_le_bytes());
        let bare = check(&ds, Start::Dataset { offset: 0, explicit: false }, true).expect("overrun");
        assert_eq!((bare.group, bare.element, bare.claimed), (0x0009, 0x1010, 1_000_000));
        let file = part10("1.2.840.10008.1.2", &ds);
        assert!(check(&file, Start::Meta { offset: 132 }, true).is_some());
        // explicit VR big endian: this length read the wrong way round is 0x102 bytes
        // (fits); read the right way round it is 0x201 (does not)
        let mut be = vec![0x00, 0x10, 0x00, 0x10, b'L', b'O', 0x02, 0x01];
        be.extend_from_slice(&[b'x'; 0x200]);
        let file = part10("1.2.840.10008.1.2.2", &be);
        assert!(check(&file, Start::Meta { offset: 132 }, true).is_some());
    }

    #[test]
    fn a_header_cut_short_at_the_end_is_left_to_dicom_rs() {
        // 8 bytes left, but an OB header needs 12
        let mut ds = explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ", None);
        ds.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
        let file = part10("1.2.840.10008.1.2.1", &ds);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, false), None);
    }

    #[test]
    fn letters_that_name_no_vr_are_read_as_un_as_dicom_rs_reads_them() {
        // like the fuzzer's unit: an item delimiter damaged into (FE20,0DFF) followed by
        // E0 00, which dicom-rs reads as UN, here claiming 0xDE000000 bytes
        let mut ds = explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ", None);
        ds.extend_from_slice(&[0x20, 0xFE, 0xFF, 0x0D, 0xE0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xDE]);
        ds.extend_from_slice(&[0u8; 64]);
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let found = check(&file, Start::Meta { offset: 132 }, true).expect("overrun");
        assert_eq!((found.group, found.element, found.claimed), (0xFE20, 0x0DFF, 0xDE00_0000));
        // and when the length fits, the walk goes on past it
        let mut ds = explicit_le(0x0009, 0x1010, b"??", &[1, 2, 3, 4], None);
        ds.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ", None));
        let file = part10("1.2.840.10008.1.2.1", &ds);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, true), None);
    }

    #[test]
    fn a_sound_un_of_undefined_length_and_a_deflated_data_set_are_not_refused() {
        // UN of undefined length: implicit VR inside (read as explicit it would claim
        // absurd lengths), walked as such up to its delimiter
        let mut ds = explicit_le(0x0009, 0x1010, b"UN", &[], Some(UNDEFINED));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend_from_slice(&[0x09, 0x00, 0x11, 0x10, 0x04, 0x00, 0x00, 0x00, b'a', b'b', b'c', b'd']);
        ds.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let file = part10("1.2.840.10008.1.2.1", &ds);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, true), None);
        let overrun = explicit_le(0x0009, 0x1010, b"OB", &[], Some(1_000_000));
        let file = part10("1.2.840.10008.1.2.1.99", &overrun);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, true), None);
        let file = part10("1.2.840.10008.1.2.1", &overrun);
        assert!(check(&file, Start::Meta { offset: 132 }, true).is_some());
    }

    /// The fuzzer's second slow class: a sequence whose VR letters were damaged into OD
    /// keeps its undefined length, which dicom-rs then reads as 4 GB of value (7 s and
    /// 3.6 GB before this). An OD, OF, UT … of undefined length is refused; a sequence
    /// and encapsulated pixel data of undefined length are walked as before.
    #[test]
    fn a_value_that_may_never_be_undefined_in_length_is_refused() {
        let mut ds = explicit_le(0x0062, 0x0002, b"OD", &[], Some(UNDEFINED));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend(explicit_le(0x0062, 0x0004, b"US", &[1, 0], None));
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let o = check(&file, Start::Meta { offset: 132 }, true).expect("refused");
        assert_eq!((o.group, o.element, o.claimed), (0x0062, 0x0002, u64::from(UNDEFINED)));
        let mut sq = explicit_le(0x0062, 0x0002, b"SQ", &[], Some(UNDEFINED));
        sq.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        sq.extend(explicit_le(0x0062, 0x0004, b"US", &[1, 0], None));
        sq.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let file = part10("1.2.840.10008.1.2.1", &sq);
        assert_eq!(check(&file, Start::Meta { offset: 132 }, true), None);
    }

    /// The fuzzer's fourth class: a meta group whose (0002,0000) length covers an element
    /// with a damaged group number. dicom-rs reads the group by its length and finds the
    /// transfer syntax after that element; the check stopped at it and let a data set
    /// element claiming 1.4 GB through (0.7 s, 1.4 GB for a 2 kB file).
    #[test]
    fn the_meta_group_is_read_by_its_length_as_dicom_rs_reads_it() {
        let mut meta = explicit_le(0x0002, 0x0001, b"OB", &[0, 1], None);
        meta.extend(explicit_le(0x0A02, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0", None));
        meta.extend(explicit_le(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0", None));
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend(explicit_le(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes(), None));
        file.extend(meta);
        file.extend(explicit_le(0x0009, 0x1010, b"OB", &[], Some(1_459_625_984)));
        file.extend_from_slice(&[0; 64]);
        let o = check(&file, Start::Meta { offset: 132 }, true).expect("refused");
        assert_eq!((o.group, o.element, o.claimed), (0x0009, 0x1010, 1_459_625_984));
    }

    /// The fuzzer's fifth class: UN of undefined length (VR letters damaged into ones that
    /// name no VR), holding implicit VR elements, one of which claims more than the file
    /// holds. dicom-rs follows the switch to implicit VR and reserves the claim (0.3-0.6 s,
    /// 0.8-1.2 GB for 8-47 kB files); the check now follows it too.
    #[test]
    fn inside_un_of_undefined_length_the_implicit_elements_are_checked() {
        let mut ds = explicit_le(0x0009, 0x1010, b"UN", &[], Some(UNDEFINED));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        // implicit: tag, 4-byte length
        ds.extend_from_slice(&[0x09, 0x00, 0x11, 0x10]);
        ds.extend_from_slice(&1_000_000u32.to_le_bytes());
        ds.extend_from_slice(&[0; 32]);
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let o = check(&file, Start::Meta { offset: 132 }, true).expect("refused");
        assert_eq!((o.group, o.element, o.claimed), (0x0009, 0x1011, 1_000_000));
        // after the UN's delimiter the walk is explicit again
        let mut ds = explicit_le(0x0009, 0x1010, b"UN", &[], Some(UNDEFINED));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend_from_slice(&[0x09, 0x00, 0x11, 0x10, 0x04, 0x00, 0x00, 0x00, b'a', b'b', b'c', b'd']);
        ds.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ", None));
        ds.extend(explicit_le(0x0011, 0x1010, b"OB", &[], Some(2_000_000)));
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let o = check(&file, Start::Meta { offset: 132 }, true).expect("refused");
        assert_eq!((o.group, o.element), (0x0011, 0x1010));
    }

    /// The fuzzer's sixth class: an AT of 10 bytes. dicom-rs reads two tags and leaves two
    /// bytes, so its next header starts inside the value and one of the elements it then
    /// reads claims 876 MB (0.4 s, 865 MB for a 7 kB file). The walk reads as it does.
    #[test]
    fn a_binary_value_of_a_broken_size_is_walked_as_dicom_rs_reads_it() {
        // AT of length 10: 8 bytes read, then "12" + (0018,…) is read as tag (3231,0018)
        let mut ds = explicit_le(0x0018, 0x1110, b"AT", &[0, 0, 0, 0, 0, 0, 0, 0, b'1', b'2'], Some(10));
        // what dicom-rs reads next: group 0x3231 from "12", element 0x0018, VR letters
        // that name no VR, reserved, then a 4-byte length of 875,888,650
        ds.extend_from_slice(&[0x18, 0x00, b'?', b'?', 0, 0]);
        ds.extend_from_slice(&875_888_650u32.to_le_bytes());
        ds.extend_from_slice(&[0; 40]);
        let file = part10("1.2.840.10008.1.2.1", &ds);
        let o = check(&file, Start::Meta { offset: 132 }, true).expect("refused");
        assert_eq!((o.group, o.element, o.claimed), (0x3231, 0x0018, 875_888_650));
    }
}
