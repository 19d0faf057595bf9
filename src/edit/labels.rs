//! The label table (what each mask value means and how it is shown) and the paint rule
//! that decides which existing voxels a tool may overwrite, as ITK-SNAP's "draw over"
//! setting: everything, only background, or only one label; locked labels are never
//! changed by any tool.

use super::EditError;

/// One label of the mask.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Label {
    /// The mask value, 1…255 (0 is background and has no entry).
    pub value: u8,
    pub name: String,
    /// Colour, sRGB with alpha.
    pub rgba: [u8; 4],
    /// Overlay opacity 0…1, on top of the colour's alpha.
    pub opacity: f32,
    pub visible: bool,
    /// A locked label's voxels are never changed by a tool.
    pub locked: bool,
}

/// The labels of a mask, ordered by value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelTable {
    labels: Vec<Label>,
}

impl Default for LabelTable {
    fn default() -> Self {
        LabelTable::lits()
    }
}

/// Colours for labels added without one: after the LiTS three, distinct hues (the same
/// order as the viewer's overlay palette).
const PALETTE: [[u8; 3]; 15] = [
    [217, 115, 89],
    [51, 230, 77],
    [77, 128, 255],
    [255, 217, 51],
    [230, 77, 230],
    [51, 230, 230],
    [255, 128, 26],
    [153, 102, 255],
    [128, 255, 128],
    [255, 102, 153],
    [179, 179, 77],
    [102, 204, 153],
    [230, 153, 102],
    [153, 153, 230],
    [204, 204, 204],
];

impl LabelTable {
    /// An empty table (background only).
    pub fn empty() -> Self {
        LabelTable { labels: Vec::new() }
    }

    /// LiTS conventions: 1 liver, 2 tumour; plus 3 vessel.
    pub fn lits() -> Self {
        let mk = |value: u8, name: &str| Label {
            value,
            name: name.into(),
            rgba: Self::default_colour(value),
            opacity: 0.5,
            visible: true,
            locked: false,
        };
        LabelTable { labels: vec![mk(1, "liver"), mk(2, "tumour"), mk(3, "vessel")] }
    }

    /// The colour a label value gets unless told otherwise.
    pub fn default_colour(value: u8) -> [u8; 4] {
        let c = PALETTE[(value.max(1) as usize - 1) % PALETTE.len()];
        [c[0], c[1], c[2], 255]
    }

    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    pub fn get(&self, value: u8) -> Option<&Label> {
        self.labels.iter().find(|l| l.value == value)
    }

    fn get_mut(&mut self, value: u8) -> Result<&mut Label, EditError> {
        self.labels
            .iter_mut()
            .find(|l| l.value == value)
            .ok_or_else(|| super::bad("label", value, "no such label in the table; add it first"))
    }

    /// The label's name, or `label N` for a value the table does not know.
    pub fn name_of(&self, value: u8) -> String {
        match (value, self.get(value)) {
            (0, _) => "background".into(),
            (_, Some(l)) => l.name.clone(),
            (v, None) => format!("label {v}"),
        }
    }

    /// Adds a label with the lowest free value and returns that value.
    pub fn add(&mut self, name: &str, rgba: Option<[u8; 4]>) -> Result<u8, EditError> {
        let value = (1..=255u8)
            .find(|v| self.get(*v).is_none())
            .ok_or_else(|| super::bad("label count", 255, "all 255 label values are in use; remove one first"))?;
        self.insert(Label {
            value,
            name: name.to_string(),
            rgba: rgba.unwrap_or(Self::default_colour(value)),
            opacity: 0.5,
            visible: true,
            locked: false,
        })?;
        Ok(value)
    }

    /// Adds `label` at its own value, which must be 1…255 and free.
    pub fn insert(&mut self, label: Label) -> Result<(), EditError> {
        if label.value == 0 {
            return Err(super::bad("label value", 0, "0 is background; labels are 1…255"));
        }
        if self.get(label.value).is_some() {
            return Err(super::bad("label value", label.value, "already in the table; rename or recolour it instead"));
        }
        check_opacity(label.opacity)?;
        let at = self.labels.partition_point(|l| l.value < label.value);
        self.labels.insert(at, label);
        Ok(())
    }

    /// Removes a label from the table (the mask's voxels are not touched).
    pub fn remove(&mut self, value: u8) -> Option<Label> {
        let at = self.labels.iter().position(|l| l.value == value)?;
        Some(self.labels.remove(at))
    }

    pub fn rename(&mut self, value: u8, name: &str) -> Result<(), EditError> {
        self.get_mut(value)?.name = name.to_string();
        Ok(())
    }

    pub fn recolour(&mut self, value: u8, rgba: [u8; 4]) -> Result<(), EditError> {
        self.get_mut(value)?.rgba = rgba;
        Ok(())
    }

    pub fn set_opacity(&mut self, value: u8, opacity: f32) -> Result<(), EditError> {
        check_opacity(opacity)?;
        self.get_mut(value)?.opacity = opacity;
        Ok(())
    }

    pub fn set_visible(&mut self, value: u8, visible: bool) -> Result<(), EditError> {
        self.get_mut(value)?.visible = visible;
        Ok(())
    }

    pub fn set_locked(&mut self, value: u8, locked: bool) -> Result<(), EditError> {
        self.get_mut(value)?.locked = locked;
        Ok(())
    }

    /// A paint rule for `value` that also respects this table's locked labels.
    pub fn paint(&self, value: u8, over: PaintOver) -> Paint {
        let mut p = Paint::new(value, over);
        for l in self.labels.iter().filter(|l| l.locked) {
            p.locked[l.value as usize] = true;
        }
        p
    }

    /// The eraser (paints background) under `over`, respecting locked labels.
    pub fn eraser(&self, over: PaintOver) -> Paint {
        self.paint(0, over)
    }
}

impl LabelTable {
    /// The colour a label is drawn with over the CT, as RGBA 0…1: the label's colour with
    /// alpha × opacity, fully transparent when hidden; `None` for a value not in the table.
    pub fn display_rgba(&self, value: u8) -> Option<[f32; 4]> {
        let l = self.get(value)?;
        let c = |x: u8| x as f32 / 255.0;
        let a = if l.visible { c(l.rgba[3]) * l.opacity } else { 0.0 };
        Some([c(l.rgba[0]), c(l.rgba[1]), c(l.rgba[2]), a])
    }

    /// The table as an ITK-SNAP label description file (`IDX R G B A VIS MSH "LABEL"`,
    /// A = colour alpha × opacity), so ITK-SNAP shows a saved mask with the same names
    /// and colours. Locks have no column there: they go in a trailing comment line that
    /// [`LabelTable::from_itksnap`] reads back and ITK-SNAP ignores.
    pub fn to_itksnap(&self) -> String {
        let mut s = String::from(
            "################################################\n\
             # ITK-SnAP Label Description File (written by Hepaview)\n\
             # File format:\n\
             # IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n\
             ################################################\n\
             \x20   0     0    0    0        0  0  0    \"Clear Label\"\n",
        );
        for l in &self.labels {
            let a = l.rgba[3] as f32 / 255.0 * l.opacity;
            let name = l.name.replace('"', "'");
            s.push_str(&format!(
                "{:5} {:5} {:4} {:4} {:8.4} {:2} {:2}    \"{}\"\n",
                l.value, l.rgba[0], l.rgba[1], l.rgba[2], a, l.visible as u8, l.visible as u8, name
            ));
        }
        let locked: Vec<String> = self.labels.iter().filter(|l| l.locked).map(|l| l.value.to_string()).collect();
        if !locked.is_empty() {
            s.push_str(&format!("{LOCKED_PREFIX}{}\n", locked.join(" ")));
        }
        s
    }

    /// Reads an ITK-SNAP label description file (see [`LabelTable::to_itksnap`]). Label 0
    /// ("Clear Label") is skipped; colours get alpha 255 and the file's A as opacity.
    /// `what` names the file in errors.
    pub fn from_itksnap(text: &str, what: &str) -> Result<LabelTable, EditError> {
        let mut t = LabelTable::empty();
        let mut locked = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(LOCKED_PREFIX.trim_end()) {
                locked.extend(rest.split_whitespace().filter_map(|v| v.parse::<u8>().ok()));
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad_line = |hint: &str| {
                super::bad("label description line", format!("{what}:{}: {line}", n + 1), hint.to_string())
            };
            let (fields, name) = match line.find('"') {
                Some(q) => (&line[..q], line[q + 1..].trim_end().trim_end_matches('"')),
                None => return Err(bad_line("expected IDX R G B A VIS MSH \"name\"")),
            };
            let f: Vec<&str> = fields.split_whitespace().collect();
            if f.len() != 7 {
                return Err(bad_line("expected 7 numbers before the quoted name"));
            }
            let int =
                |s: &str| s.parse::<u8>().map_err(|_| bad_line("IDX, R, G, B, VIS and MSH are whole numbers 0…255"));
            let value = int(f[0])?;
            if value == 0 {
                continue;
            }
            let opacity: f32 = f[4].parse().map_err(|_| bad_line("A is a number from 0 to 1"))?;
            t.insert(Label {
                value,
                name: name.to_string(),
                rgba: [int(f[1])?, int(f[2])?, int(f[3])?, 255],
                opacity: opacity.clamp(0.0, 1.0),
                visible: int(f[5])? != 0,
                locked: false,
            })
            .map_err(|_| bad_line("each label value may appear once"))?;
        }
        for v in locked {
            let _ = t.set_locked(v, true);
        }
        Ok(t)
    }

    /// Where the label description of a mask saved at `mask_path` goes: beside it, with
    /// `.nii.gz`/`.nii` replaced by `.labels.txt`.
    pub fn sidecar_path(mask_path: &std::path::Path) -> std::path::PathBuf {
        let name = mask_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lower = name.to_lowercase();
        let stem = if lower.ends_with(".nii.gz") {
            &name[..name.len() - 7]
        } else if lower.ends_with(".nii") {
            &name[..name.len() - 4]
        } else {
            &name[..]
        };
        mask_path.with_file_name(format!("{stem}.labels.txt"))
    }
}

const LOCKED_PREFIX: &str = "# hepaview locked labels: ";

fn check_opacity(o: f32) -> Result<(), EditError> {
    if !(0.0..=1.0).contains(&o) {
        return Err(super::bad("opacity", o, "give a value from 0 (invisible) to 1 (opaque)"));
    }
    Ok(())
}

/// Which existing voxels a tool may paint over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PaintOver {
    /// Any voxel whose label is not locked.
    Everything,
    /// Only background (0) voxels.
    Background,
    /// Only voxels of this label (with the eraser: erase only this label).
    Label(u8),
}

/// What a tool writes (`value`) and which voxels it may change.
#[derive(Clone, Debug, PartialEq)]
pub struct Paint {
    pub value: u8,
    pub over: PaintOver,
    locked: [bool; 256],
}

impl Paint {
    /// `value` over `over`, with no labels locked.
    pub fn new(value: u8, over: PaintOver) -> Self {
        Paint { value, over, locked: [false; 256] }
    }

    /// The eraser (writes 0).
    pub fn eraser(over: PaintOver) -> Self {
        Paint::new(0, over)
    }

    /// Also never change voxels of `labels`.
    pub fn with_locked(mut self, labels: &[u8]) -> Self {
        for &l in labels {
            self.locked[l as usize] = true;
        }
        self
    }

    pub fn is_locked(&self, label: u8) -> bool {
        self.locked[label as usize]
    }

    /// May a voxel holding `current` be set to `self.value`? False when it already is.
    #[inline]
    pub fn may_overwrite(&self, current: u8) -> bool {
        current != self.value
            && !self.locked[current as usize]
            && match self.over {
                PaintOver::Everything => true,
                PaintOver::Background => current == 0,
                PaintOver::Label(l) => current == l,
            }
    }

    /// May a voxel of `self.value` be taken out of that label (set to background) by a
    /// tool that reshapes the label (smoothing, opening, islands)? Only a lock stops it:
    /// the "paint over" rule governs where a label may grow, not where it may shrink.
    #[inline]
    pub fn may_shrink(&self) -> bool {
        !self.locked[self.value as usize]
    }

    /// Precomputed [`Paint::may_overwrite`] for every value.
    pub(crate) fn table(&self) -> [bool; 256] {
        let mut t = [false; 256];
        for (v, slot) in t.iter_mut().enumerate() {
            *slot = self.may_overwrite(v as u8);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lits_defaults_and_edits() {
        let mut t = LabelTable::lits();
        assert_eq!(t.name_of(1), "liver");
        assert_eq!(t.name_of(2), "tumour");
        assert_eq!(t.name_of(3), "vessel");
        assert_eq!(t.name_of(0), "background");
        assert_eq!(t.add("cyst", None).unwrap(), 4);
        t.rename(4, "simple cyst").unwrap();
        t.recolour(4, [1, 2, 3, 255]).unwrap();
        assert_eq!(t.get(4).unwrap().rgba, [1, 2, 3, 255]);
        assert!(t.rename(9, "x").is_err());
        assert!(t.set_opacity(1, 1.5).is_err());
        assert!(t
            .insert(Label { value: 0, name: "bg".into(), rgba: [0; 4], opacity: 1.0, visible: true, locked: false })
            .is_err());
        t.remove(2);
        assert_eq!(t.add("tumour again", None).unwrap(), 2);
        let values: Vec<u8> = t.labels().iter().map(|l| l.value).collect();
        assert_eq!(values, vec![1, 2, 3, 4]);
    }

    #[test]
    fn itksnap_round_trip_and_display_colours() {
        let mut t = LabelTable::lits();
        t.rename(2, "HCC \"main\"").unwrap();
        t.recolour(3, [10, 20, 30, 255]).unwrap();
        t.set_opacity(3, 0.25).unwrap();
        t.set_visible(1, false).unwrap();
        t.set_locked(1, true).unwrap();
        let text = t.to_itksnap();
        assert!(text.contains("    3    10   20   30   0.2500  1  1    \"vessel\""), "{text}");
        let back = LabelTable::from_itksnap(&text, "t.txt").unwrap();
        assert_eq!(back.name_of(2), "HCC 'main'");
        assert_eq!(back.get(3).unwrap().rgba, [10, 20, 30, 255]);
        assert_eq!(back.get(3).unwrap().opacity, 0.25);
        assert!(!back.get(1).unwrap().visible && back.get(1).unwrap().locked);
        assert!(!back.get(2).unwrap().locked);
        assert_eq!(back.display_rgba(1).unwrap()[3], 0.0, "hidden: not drawn");
        let c = back.display_rgba(3).unwrap();
        assert!((c[0] - 10.0 / 255.0).abs() < 1e-6 && (c[3] - 0.25).abs() < 1e-6);
        assert_eq!(back.display_rgba(9), None);
        let err = LabelTable::from_itksnap("1 2 3\n", "bad.txt").unwrap_err().to_string();
        assert!(err.contains("bad.txt:1"), "{err}");
        let p = LabelTable::sidecar_path(std::path::Path::new("/a/mask-edited.nii.gz"));
        assert_eq!(p, std::path::Path::new("/a/mask-edited.labels.txt"));
    }

    #[test]
    fn paint_rules() {
        let mut t = LabelTable::lits();
        let all = t.paint(2, PaintOver::Everything);
        assert!(all.may_overwrite(0) && all.may_overwrite(1) && !all.may_overwrite(2));
        let bg = t.paint(2, PaintOver::Background);
        assert!(bg.may_overwrite(0) && !bg.may_overwrite(1));
        let only1 = t.paint(2, PaintOver::Label(1));
        assert!(!only1.may_overwrite(0) && only1.may_overwrite(1) && !only1.may_overwrite(3));
        t.set_locked(1, true).unwrap();
        let all = t.paint(2, PaintOver::Everything);
        assert!(!all.may_overwrite(1) && all.may_overwrite(3));
        let er = t.eraser(PaintOver::Everything);
        assert!(!er.may_overwrite(1) && er.may_overwrite(2) && !er.may_overwrite(0));
        assert!(!t.paint(1, PaintOver::Everything).may_shrink());
    }
}
