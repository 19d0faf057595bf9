//! Clustering and lesion analysis on the procedural phantom, whose lesions have known
//! kind, centre and radius (`hepaview::phantom`).
//!
//! The phantom's phases are rendered on one grid with no breathing, i.e. as registration
//! would deliver them: the lesion module reads every phase on the mask's grid.

use std::sync::OnceLock;

use hepaview::cluster::{
    self, build_features, cluster_voxels, ClusterError, ClusterOptions, FeatureOptions, KMeansOptions,
};
use hepaview::io::phase::Phase;
use hepaview::lesion::{
    analyse_lesions, Lesion, LesionError, LesionOptions, LesionReport, PatternKind, HINT_DISCLAIMER,
};
use hepaview::phantom::{make_phantom, LesionKind, Phantom, PhantomOptions};
use hepaview::volume::{norm, sub, Geometry, Volume};

/// 1.5 × 1.5 × 2.5 mm (the clinical default's voxels) over the four lesions and a margin.
fn grid() -> Geometry {
    Geometry::axis_aligned([44, 72, 128], [2.5, 1.5, 1.5], [-136.5, -66.0, -240.0])
}

fn phantom_on(g: Geometry) -> Phantom {
    let opts = PhantomOptions {
        portal_venous_grid: g.clone(),
        arterial_grid: g.clone(),
        delayed_grid: g,
        seed: 48,
        noise_sigma_hu: 8.0,
        breathing_scale: 0.0,
        supersample: [2, 1, 1],
        visit: hepaview::phantom::Visit::Baseline,
    };
    make_phantom(&opts)
}

fn phantom() -> &'static Phantom {
    static P: OnceLock<Phantom> = OnceLock::new();
    P.get_or_init(|| phantom_on(grid()))
}

fn phases(p: &Phantom) -> Vec<(Phase, &hepaview::CtVolume)> {
    p.phases.iter().map(|ph| (ph.name, &ph.volume)).collect()
}

fn report() -> &'static LesionReport {
    static R: OnceLock<LesionReport> = OnceLock::new();
    R.get_or_init(|| {
        let p = phantom();
        analyse_lesions(&p.labels, &phases(p), &LesionOptions::default()).expect("analysis")
    })
}

/// The analysed lesion whose centroid is nearest `centre`.
fn nearest(lesions: &[Lesion], centre: [f64; 3]) -> &Lesion {
    lesions
        .iter()
        .min_by(|a, b| norm(sub(a.centroid_mm, centre)).total_cmp(&norm(sub(b.centroid_mm, centre))))
        .expect("at least one lesion")
}

#[test]
fn phantom_lesions_measure_within_one_voxel() {
    let p = phantom();
    let rep = report();
    assert_eq!(
        rep.lesions.len(),
        4,
        "{:#?}",
        rep.lesions.iter().map(|l| (l.id, l.volume_ml, l.centroid_mm)).collect::<Vec<_>>()
    );
    let [sz, sy, sx] = grid().spacing_mm;
    let voxel = sz.max(sy).max(sx);
    let in_plane = sy.max(sx);
    for truth in &p.lesions {
        let l = nearest(&rep.lesions, truth.centre_mm);
        let d = 2.0 * truth.radius_mm;
        let kind = truth.kind;
        assert!(
            norm(sub(l.centroid_mm, truth.centre_mm)) <= in_plane,
            "{kind:?}: centroid {:?} vs {:?}",
            l.centroid_mm,
            truth.centre_mm
        );
        // same voxels as the phantom counted
        assert!((l.volume_ml - truth.volume_ml).abs() < 1e-9, "{kind:?}: {} vs {} ml", l.volume_ml, truth.volume_ml);
        // the sphere's volume within a one-voxel shell
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * truth.radius_mm.powi(3) / 1000.0;
        let shell = 4.0 * std::f64::consts::PI * truth.radius_mm.powi(2) * voxel / 2.0 / 1000.0;
        assert!((l.volume_ml - sphere).abs() <= shell, "{kind:?}: {} ml vs sphere {sphere} ml", l.volume_ml);
        assert!(
            (l.longest_diameter_3d_mm - d).abs() <= voxel,
            "{kind:?}: 3-D diameter {} vs {d}",
            l.longest_diameter_3d_mm
        );
        assert!((l.recist.long_axis_mm - d).abs() <= in_plane, "{kind:?}: long axis {} vs {d}", l.recist.long_axis_mm);
        assert!(
            (l.recist.short_axis_mm - d).abs() <= in_plane,
            "{kind:?}: short axis {} vs {d}",
            l.recist.short_axis_mm
        );
        assert!(l.recist.short_axis_mm <= l.recist.long_axis_mm);
        assert!(!l.touches_edge, "{kind:?} flagged as touching the edge");
        assert_eq!(l.phases.len(), 3);
        // the ring is liver: about 110 HU in the portal venous phase
        let pv = l.phases.iter().find(|s| s.phase == Phase::PortalVenous).expect("pv stats");
        let ring = pv.liver_ring.as_ref().expect("liver ring");
        assert!((ring.median_hu - 110.0).abs() < 10.0, "{kind:?}: ring median {}", ring.median_hu);
    }
    // ids by size, largest first
    let vols: Vec<f64> = rep.lesions.iter().map(|l| l.volume_ml).collect();
    assert!(vols.windows(2).all(|w| w[0] >= w[1]), "{vols:?}");
    assert_eq!(rep.lesions.iter().map(|l| l.id).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

#[test]
fn pattern_of_each_phantom_lesion_comes_out_as_built() {
    let p = phantom();
    let rep = report();
    for truth in &p.lesions {
        let l = nearest(&rep.lesions, truth.centre_mm);
        let want = match truth.kind {
            LesionKind::Hcc => PatternKind::HccLike,
            LesionKind::Hemangioma => PatternKind::HemangiomaLike,
            LesionKind::Cyst => PatternKind::CystLike,
            LesionKind::Metastasis => PatternKind::MetastasisLike,
            LesionKind::TreatedHcc => unreachable!("the baseline has no treated lesion"),
        };
        assert_eq!(l.pattern.kind, want, "{:?}: {}\n{:#?}", truth.kind, l.pattern.summary, l.pattern);
        assert!(l.pattern.summary.contains("not a diagnosis"));
        assert_eq!(l.pattern.disclaimer, HINT_DISCLAIMER);
        assert!(!l.pattern.findings.is_empty());
    }
    let hcc = nearest(&rep.lesions, p.lesions[0].centre_mm);
    assert_eq!(hcc.pattern.evidence.arterial_hyperenhancement, Some(true));
    assert_eq!(hcc.pattern.evidence.washout, Some(true));
    assert_eq!(hcc.pattern.evidence.capsule_like_rim, Some(true), "{:#?}", hcc.pattern);
    // serialisable for the report
    let json = serde_json::to_string(rep).expect("json");
    assert!(json.contains("hcc_like") && json.contains("not a diagnosis"));
}

#[test]
fn lesion_cut_by_the_volume_edge_is_flagged() {
    // the same body on a grid that starts at x = -100 mm, through the HCC (x -95 ± 17)
    let mut g = grid();
    g.origin_mm[0] = -100.5;
    g.shape[2] = 100;
    let p = phantom_on(g);
    let rep = analyse_lesions(&p.labels, &phases(&p), &LesionOptions::default()).expect("analysis");
    let hcc = nearest(&rep.lesions, p.lesions[0].centre_mm);
    assert!(hcc.touches_edge);
    assert_eq!(hcc.bounding_box[2][0], 0);
    for truth in &p.lesions[1..] {
        if truth.centre_mm[0] - truth.radius_mm > -100.0 {
            assert!(!nearest(&rep.lesions, truth.centre_mm).touches_edge, "{:?}", truth.kind);
        }
    }
}

#[test]
fn phantom_clusters_are_deterministic_ordered_and_separate_the_cyst() {
    let p = phantom();
    let names = ["arterial", "portal venous", "delayed"];
    let ph: Vec<(&str, &hepaview::CtVolume)> = p.phases.iter().zip(names).map(|(ph, n)| (n, &ph.volume)).collect();
    let feats =
        build_features(&ph, &p.labels, &FeatureOptions { mask_labels: vec![1, 2], margin_mm: 0.0 }).expect("features");
    let pv = feats.feature_index("portal venous").expect("pv feature");
    let opts = ClusterOptions { kmeans: KMeansOptions::default(), order_by_feature: Some(pv), majority_iterations: 0 };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| cluster_voxels(&feats, &opts, &cluster::no_progress).expect("clustering"))
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.labels.data, two.labels.data, "labels differ between 1 and 2 threads");
    assert_eq!(one.report, two.report);
    assert_eq!(one.report, run(2).report, "labels differ between runs");
    let rep = &one.report;
    assert_eq!(rep.clusters.len(), 7);
    // ordered by portal venous mean, labels 1..=7, counts add up to the region
    let means: Vec<f32> = rep.clusters.iter().map(|c| c.mean[pv]).collect();
    assert!(means.windows(2).all(|w| w[0] <= w[1]), "{means:?}");
    assert_eq!(rep.clusters.iter().map(|c| c.voxel_count).sum::<usize>(), feats.voxels.len());
    assert_eq!(rep.clusters.iter().map(|c| c.label).collect::<Vec<_>>(), (1..=7).collect::<Vec<u8>>());
    // 0 exactly outside the region
    for (l, m) in one.labels.data.iter().zip(p.labels.data.iter()) {
        assert_eq!(*l == 0, *m == 0);
        assert!(*l <= 7);
    }
    // the cyst (water, ~5 HU in every phase) is the lowest portal venous cluster
    let cyst = &p.lesions[2];
    assert_eq!(cyst.kind, LesionKind::Cyst);
    let g = &p.labels.geometry;
    let c = g.world_to_index(cyst.centre_mm);
    let at = |di: f64| one.labels.data[[c[2].round() as usize, c[1].round() as usize, (c[0] + di).round() as usize]];
    assert!(
        (-3..=3).all(|d| at(d as f64) == 1),
        "cyst centre labels {:?}",
        (-3..=3).map(|d| at(d as f64)).collect::<Vec<_>>()
    );
    assert!(means[0] < 30.0, "lowest cluster mean {}", means[0]);

    // the majority filter keeps the region and makes the labels smoother (fewer
    // neighbouring voxels of different clusters); k = 7 on a noisy, mostly uniform liver
    // splits parenchyma by noise, so it has plenty to smooth
    let filtered =
        cluster_voxels(&feats, &ClusterOptions { majority_iterations: 2, ..opts.clone() }, &cluster::no_progress)
            .expect("filtered");
    for (l, m) in filtered.labels.data.iter().zip(p.labels.data.iter()) {
        assert_eq!(*l == 0, *m == 0);
    }
    let borders = |m: &hepaview::Mask| {
        let d = &m.data;
        let (nz, ny, nx) = d.dim();
        let mut n = 0;
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let a = d[[k, j, i]];
                    for (kk, jj, ii) in [(k + 1, j, i), (k, j + 1, i), (k, j, i + 1)] {
                        if kk < nz && jj < ny && ii < nx {
                            let b = d[[kk, jj, ii]];
                            n += (a != 0 && b != 0 && a != b) as usize;
                        }
                    }
                }
            }
        }
        n
    };
    let (before, after) = (borders(&one.labels), borders(&filtered.labels));
    assert!(after * 2 < before, "cluster borders {before} -> {after}");
    assert_eq!(filtered.report.clusters.iter().map(|c| c.voxel_count).sum::<usize>(), feats.voxels.len());
}

#[test]
fn dilated_region_grows_by_the_margin() {
    let p = phantom();
    let ph = [("pv", &p.phases[1].volume)];
    let tight =
        build_features(&ph, &p.labels, &FeatureOptions { mask_labels: vec![2], margin_mm: 0.0 }).expect("tight");
    let grown =
        build_features(&ph, &p.labels, &FeatureOptions { mask_labels: vec![2], margin_mm: 3.0 }).expect("grown");
    assert!(grown.voxels.len() > tight.voxels.len());
    // every voxel of the tight region is still there, and new ones lie within 3 mm of it
    let g = &p.labels.geometry;
    let tight_set: std::collections::HashSet<usize> = tight.voxels.iter().copied().collect();
    assert!(tight.voxels.iter().all(|v| grown.voxels.binary_search(v).is_ok()));
    let [_, ny, nx] = g.shape;
    let world = |v: usize| g.index_to_world([(v % nx) as f64, ((v / nx) % ny) as f64, (v / (nx * ny)) as f64]);
    let tumour: Vec<[f64; 3]> = tight.voxels.iter().map(|&v| world(v)).collect();
    for &v in grown.voxels.iter().filter(|v| !tight_set.contains(v)).step_by(7) {
        let w = world(v);
        let d = tumour.iter().map(|t| norm(sub(*t, w))).fold(f64::INFINITY, f64::min);
        assert!(d <= 3.0 + 1e-6, "voxel {v} is {d} mm from the tumour");
    }
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let p = phantom();
    let pv = &p.phases[1].volume;
    // a phase on another grid
    let other = Volume::filled(Geometry::axis_aligned([4, 4, 4], [1.0; 3], [0.0; 3]), 0i16);
    let e = build_features(&[("pv", pv), ("other", &other)], &p.labels, &FeatureOptions::default()).unwrap_err();
    assert!(matches!(e, ClusterError::GridMismatch { .. }), "{e}");
    assert!(e.to_string().contains("other"));
    // an empty mask
    let empty = Volume::filled(p.labels.geometry.clone(), 0u8);
    assert!(matches!(
        build_features(&[("pv", pv)], &empty, &FeatureOptions::default()),
        Err(ClusterError::EmptyMask { .. })
    ));
    // labels not in the mask
    let e =
        build_features(&[("pv", pv)], &p.labels, &FeatureOptions { mask_labels: vec![9], margin_mm: 0.0 }).unwrap_err();
    assert!(matches!(e, ClusterError::EmptyMask { .. }), "{e}");
    // negative margin, no phases
    assert!(matches!(
        build_features(&[("pv", pv)], &p.labels, &FeatureOptions { mask_labels: vec![], margin_mm: -1.0 }),
        Err(ClusterError::BadMargin { .. })
    ));
    assert!(matches!(build_features(&[], &p.labels, &FeatureOptions::default()), Err(ClusterError::NoFeatures)));
    // more clusters than voxels: a 5-voxel mask
    let mut tiny = empty.clone();
    for i in 0..5 {
        tiny.data[[10, 10, 10 + i]] = 1;
    }
    let f = build_features(&[("pv", pv)], &tiny, &FeatureOptions::default()).expect("5 voxels");
    let opts = ClusterOptions { kmeans: KMeansOptions { k: 6, ..Default::default() }, ..Default::default() };
    assert!(matches!(cluster_voxels(&f, &opts, &cluster::no_progress), Err(ClusterError::TooFewPoints { k: 6, n: 5 })));
    let zero = ClusterOptions { kmeans: KMeansOptions { k: 0, ..Default::default() }, ..Default::default() };
    assert!(matches!(cluster_voxels(&f, &zero, &cluster::no_progress), Err(ClusterError::ZeroClusters)));
    // cancelling
    let cancel = |_: f32, _: &str| false;
    assert!(matches!(
        cluster_voxels(
            &f,
            &ClusterOptions { kmeans: KMeansOptions { k: 2, ..Default::default() }, ..Default::default() },
            &cancel
        ),
        Err(ClusterError::Cancelled)
    ));
    // lesion analysis with a phase on another grid
    assert!(matches!(
        analyse_lesions(&p.labels, &[(Phase::Arterial, &other)], &LesionOptions::default()),
        Err(LesionError::GridMismatch { .. })
    ));
}
