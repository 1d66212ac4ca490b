//! Diagnostic: per-frame errors of one tracker run on the synthetic fast sequence.
use hdpf::filter::FilterKind;
use hdpf::geometry::se3::{rotation_error_deg, translation_error};
use hdpf::pose::commands::track_frame;
use hdpf::pose::synth::{render_sequence, ycbv_camera, Motion, SynthConfig, Synthesizer};
use hdpf::pose::tracker::{MotionModel, ObjectModel, Tracker, TrackerConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind: FilterKind = args
        .get(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(FilterKind::Rfpf);
    let n: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(100);
    let frames: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(40);
    let mut cfg = SynthConfig::new("in-memory");
    cfg.frames = frames;
    cfg.motion = Motion::Fast;
    cfg.camera = ycbv_camera(320, 240);
    let t0 = std::time::Instant::now();
    let seq = render_sequence(&cfg).unwrap();
    let synth = Synthesizer::new(&cfg).unwrap();
    eprintln!(
        "render {:.1}s, {:?}",
        t0.elapsed().as_secs_f64(),
        synth.motion_stats()
    );
    let models: Vec<ObjectModel> = synth
        .models()
        .map(|(_, id, mesh)| ObjectModel::from_mesh(id, mesh, 3000, 0).unwrap())
        .collect();
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .map(|v| v.parse().unwrap())
            .unwrap_or(d)
    };
    let mut tc = TrackerConfig {
        filter: kind,
        particles: n,
        motion: MotionModel::ConstantVelocity,
        motion_sigma: (0.015, 6f64.to_radians()),
        process_noise: (0.006, 2f64.to_radians()),
        unit: 0.008,
        ..TrackerConfig::default()
    };
    tc.velocity_damping = env("DAMP", 1.0);
    tc.depth.missing_cost = env("MISS", 0.0);
    tc.motion_sigma = (env("MS_T", 15.0) * 1e-3, env("MS_R", 6.0).to_radians());
    tc.process_noise = (env("PN_T", 6.0) * 1e-3, env("PN_R", 2.0).to_radians());
    tc.coarse_scale = env("COARSE", 8.0) * 1e-3;
    tc.unit = env("UNIT", 8.0) * 1e-3;
    tc.eta = env("ETA", 0.06);
    if env("DEDGE", 0.0) > 0.0 {
        tc.modalities
            .push(hdpf::pose::tracker::ModalityKind::DepthEdge);
    }
    tc.depth_edge.n_eff = env("DE_NEFF", 20.0);
    if env("RW", 0.0) > 0.0 {
        tc.motion = MotionModel::RandomWalk;
    }
    let init = seq[0].gt.iter().map(|g| g.pose).collect();
    let mut tr = Tracker::new(tc, models, init).unwrap();
    let (mut sum_t, mut sum_r, mut cnt) = (0.0, 0.0, 0.0);
    let mut prev_gt: Option<Vec<_>> = None;
    for f in &seq {
        let out = tr.step(&track_frame(&f.frame, false)).unwrap();
        let mut line = format!("{:3}", f.im_id());
        for (k, g) in f.gt.iter().enumerate() {
            let step = prev_gt
                .as_ref()
                .map(|p: &Vec<nalgebra::Isometry3<f64>>| {
                    (
                        translation_error(&p[k], &g.pose) * 1e3,
                        rotation_error_deg(&p[k], &g.pose),
                    )
                })
                .unwrap_or((0.0, 0.0));
            line += &format!(
                " | step {:5.1}mm {:4.1}° err {:6.1}mm {:5.1}° sp {:5.1} vis {:.2}",
                step.0,
                step.1,
                translation_error(&out.poses[k], &g.pose) * 1e3,
                rotation_error_deg(&out.poses[k], &g.pose),
                out.spread[k] * 1e3,
                f.info[k].visib_fract
            );
        }
        if std::env::var("QUIET").is_err() {
            println!("{line}");
        }
        for (k, g) in f.gt.iter().enumerate() {
            sum_t += translation_error(&out.poses[k], &g.pose) * 1e3;
            sum_r += rotation_error_deg(&out.poses[k], &g.pose);
            cnt += 1.0;
        }
        prev_gt = Some(f.gt.iter().map(|g| g.pose).collect());
    }
    println!(
        "mean trans err {:.1} mm, rot {:.1} deg",
        sum_t / cnt,
        sum_r / cnt
    );
}
