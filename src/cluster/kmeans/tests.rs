//! k-means on known blobs, bad input, thread counts and vector paths.

use super::kernels::SIMD_CAP;
use super::seeding::Rng;
use super::*;

/// Gaussian-ish blobs around known centres (deterministic).
fn blobs(centres: &[[f32; 3]], per: usize, spread: f32, seed: u64) -> FeatureMatrix {
    let mut rng = Rng::new(seed);
    let mut cols = vec![Vec::new(); 3];
    for i in 0..per * centres.len() {
        let c = &centres[i % centres.len()];
        for d in 0..3 {
            // sum of 4 uniforms: roughly normal, bounded
            let u: f64 = (0..4).map(|_| rng.unit() - 0.5).sum();
            cols[d].push(c[d] + spread * u as f32);
        }
    }
    FeatureMatrix::from_columns(cols).unwrap()
}

#[test]
fn recovers_blob_centres() {
    let centres = [[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 100.0], [60.0, 60.0, 60.0]];
    let x = blobs(&centres, 3000, 10.0, 7);
    let opts = KMeansOptions { k: 5, ..Default::default() };
    let r = kmeans(&x, &opts).unwrap();
    assert!(r.converged);
    for c in &centres {
        let best = (0..5)
            .map(|j| r.centre(j).iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt())
            .fold(f32::INFINITY, f32::min);
        assert!(best < 0.5, "centre {c:?} not recovered (nearest at {best})");
    }
    assert_eq!(r.sizes.iter().sum::<usize>(), x.len());
    assert!(r.sizes.iter().all(|&s| s == 3000), "{:?}", r.sizes);
}

#[test]
fn inertia_matches_labels_and_centres() {
    let x = blobs(&[[0.0, 0.0, 0.0], [30.0, 5.0, 0.0], [10.0, 40.0, 8.0]], 2000, 25.0, 3);
    let r = kmeans(&x, &KMeansOptions { k: 4, ..Default::default() }).unwrap();
    let mut inertia = 0.0;
    for i in 0..x.len() {
        let c = r.centre(r.labels[i] as usize);
        // each point's label is its nearest centre
        let d = |c: &[f32]| (0..3).map(|d| ((x.get(i, d) - c[d]) as f64).powi(2)).sum::<f64>();
        let own = d(c);
        for j in 0..4 {
            assert!(own <= d(r.centre(j)) + 1e-3, "point {i} nearer to {j}");
        }
        inertia += own;
    }
    assert!((inertia - r.inertia).abs() <= 1e-4 * inertia, "{inertia} vs {}", r.inertia);
}

#[test]
fn same_result_on_any_thread_count() {
    // more than one chunk, and a ragged last chunk
    let x = blobs(&[[0.0, 0.0, 0.0], [5.0, 1.0, 0.0], [1.0, 6.0, 2.0], [3.0, 3.0, 7.0]], 9000, 6.0, 11);
    assert!(x.len() > 3 * CHUNK);
    let opts = KMeansOptions { k: 7, seed: 5, ..Default::default() };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| kmeans(&x, &opts).unwrap())
    };
    let one = run(1);
    let two = run(2);
    let three = run(3);
    assert_eq!(one, two);
    assert_eq!(one.labels, two.labels);
    assert_eq!(one.inertia.to_bits(), three.inertia.to_bits());
    assert_eq!(one.labels, three.labels);
    assert_eq!(one, kmeans(&x, &opts).unwrap());
    // a different seed is allowed to differ, and does seed differently
    let other = kmeans(&x, &KMeansOptions { seed: 6, ..opts.clone() }).unwrap();
    assert!(other.iterations >= 1);
}

#[test]
fn every_vector_path_gives_the_same_bits() {
    let x = blobs(&[[0.0, 0.0, 0.0], [5.0, 1.0, 0.0], [1.0, 6.0, 2.0]], 7000, 6.0, 4);
    let opts = KMeansOptions { k: 6, seed: 9, ..Default::default() };
    let at = |level: u8| {
        SIMD_CAP.store(level, std::sync::atomic::Ordering::Relaxed);
        let r = kmeans(&x, &opts).unwrap();
        SIMD_CAP.store(2, std::sync::atomic::Ordering::Relaxed);
        r
    };
    let portable = at(0);
    assert_eq!(portable, at(1));
    assert_eq!(portable, at(2));
}

#[test]
fn ordering_by_feature_renumbers_consistently() {
    let x = blobs(&[[50.0, 3.0], [10.0, 1.0], [90.0, 2.0]].map(|c| [c[0], c[1], 0.0]), 500, 4.0, 1);
    let mut r = kmeans(&x, &KMeansOptions { k: 3, ..Default::default() }).unwrap();
    let before = r.clone();
    r.order_by_feature(0).unwrap();
    let means: Vec<f32> = (0..3).map(|c| r.centre(c)[0]).collect();
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
    for i in 0..x.len() {
        assert_eq!(r.centre(r.labels[i] as usize), before.centre(before.labels[i] as usize));
    }
    assert!(matches!(r.order_by_feature(3), Err(ClusterError::FeatureOutOfRange { .. })));
}

#[test]
fn given_initial_centres_are_used() {
    let x = blobs(&[[0.0, 0.0, 0.0], [50.0, 0.0, 0.0]], 1000, 5.0, 2);
    // start with both centres on one side: Lloyd still separates the blobs
    let init = vec![-1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let r = kmeans(&x, &KMeansOptions { k: 2, init: Some(init), ..Default::default() }).unwrap();
    let mut xs: Vec<f32> = (0..2).map(|c| r.centre(c)[0]).collect();
    xs.sort_by(f32::total_cmp);
    assert!(xs[0].abs() < 0.5 && (xs[1] - 50.0).abs() < 0.5, "{xs:?}");
    // the same start gives the same result whatever the seed
    let a = kmeans(&x, &KMeansOptions { k: 2, seed: 1, init: Some(r.centres.clone()), ..Default::default() }).unwrap();
    let b = kmeans(&x, &KMeansOptions { k: 2, seed: 2, init: Some(r.centres.clone()), ..Default::default() }).unwrap();
    assert_eq!(a, b);
    let bad = |init: Vec<f32>| kmeans(&x, &KMeansOptions { k: 2, init: Some(init), ..Default::default() });
    assert!(matches!(bad(vec![0.0; 5]), Err(ClusterError::BadInit { .. })));
    assert!(matches!(bad(vec![0.0, 0.0, f32::NAN, 1.0, 1.0, 1.0]), Err(ClusterError::BadInit { .. })));
}

#[test]
fn bad_input_is_an_error() {
    let x = FeatureMatrix::from_columns(vec![vec![1.0, 2.0, 3.0]]).unwrap();
    let k = |k| KMeansOptions { k, ..Default::default() };
    assert!(matches!(kmeans(&x, &k(0)), Err(ClusterError::ZeroClusters)));
    assert!(matches!(kmeans(&x, &k(4)), Err(ClusterError::TooFewPoints { k: 4, n: 3 })));
    assert!(matches!(kmeans(&x, &k(256)), Err(ClusterError::TooManyClusters { .. })));
    assert!(matches!(kmeans(&x, &KMeansOptions { max_iter: 0, ..k(2) }), Err(ClusterError::ZeroIterations)));
    assert!(matches!(kmeans(&x, &KMeansOptions { tol: f64::NAN, ..k(2) }), Err(ClusterError::BadTolerance { .. })));
    let nan = FeatureMatrix::from_columns(vec![vec![1.0, 2.0, 3.0], vec![0.0, f32::NAN, 1.0]]).unwrap();
    assert!(matches!(kmeans(&nan, &k(2)), Err(ClusterError::NonFinite { index: 1, feature: 1, .. })));
    let inf = FeatureMatrix::from_columns(vec![vec![1.0, f32::INFINITY, 3.0]]).unwrap();
    assert!(matches!(kmeans(&inf, &k(2)), Err(ClusterError::NonFinite { index: 1, feature: 0, .. })));
    assert!(matches!(FeatureMatrix::from_columns(vec![]), Err(ClusterError::NoFeatures)));
    assert!(matches!(FeatureMatrix::from_columns(vec![vec![1.0], vec![]]), Err(ClusterError::BadShape { .. })));
    assert!(matches!(FeatureMatrix::from_rows(&[1.0; 7], 2), Err(ClusterError::BadShape { .. })));
    assert!(matches!(FeatureMatrix::from_rows(&[1.0; 9], 9), Err(ClusterError::TooManyFeatures { .. })));
    let empty = FeatureMatrix::from_columns(vec![vec![]]).unwrap();
    assert!(matches!(kmeans(&empty, &k(1)), Err(ClusterError::TooFewPoints { .. })));
}

#[test]
fn duplicate_points_and_k_equal_n_do_not_panic() {
    // fewer distinct points than clusters: empty clusters get relocated, no panic
    let x = FeatureMatrix::from_columns(vec![vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0]]).unwrap();
    let r = kmeans(&x, &KMeansOptions { k: 4, ..Default::default() }).unwrap();
    assert_eq!(r.sizes.iter().sum::<usize>(), 6);
    assert!(r.inertia.abs() < 1e-9);
    let y = FeatureMatrix::from_columns(vec![vec![0.0, 5.0, 9.0]]).unwrap();
    let r = kmeans(&y, &KMeansOptions { k: 3, ..Default::default() }).unwrap();
    assert_eq!(r.inertia, 0.0);
    assert_eq!(r.sizes, vec![1, 1, 1]);
}

#[test]
fn rows_and_columns_agree() {
    let rows: Vec<f32> = (0..30).map(|v| v as f32).collect();
    let m = FeatureMatrix::from_rows(&rows, 3).unwrap();
    assert_eq!(m.len(), 10);
    assert_eq!(m.get(4, 2), 14.0);
    assert_eq!(m.column(1)[9], 28.0);
}
