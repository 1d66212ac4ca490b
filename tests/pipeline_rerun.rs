//! rerun logging to an in-memory sink: the entity tree and the number of rows per entity.
#![cfg(feature = "rerun")]

#[path = "support/pipeline.rs"]
mod support;

use hdpf::app::viz::{entity_counts, RerunSink};
use hdpf::domains::pose::mesh::Mesh;
use hdpf::runtime::pipeline::{MeshLibrary, ModelPoints, Pipeline, PipelineConfig, SequenceSource};
use std::sync::Arc;

#[test]
fn logs_the_documented_entities_per_frame() {
    let root = support::temp_dir("rerun");
    support::write_dataset(&root, 4);
    let src = SequenceSource::open(&root, &[("test".into(), 1)], None).unwrap();
    let config = PipelineConfig {
        rate_hz: None,
        progress: false,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(config, Box::new(src));
    let (mut t, _) = support::EchoGt::new("rfpf");
    t.particles = true;
    p.add_tracker(Box::new(t));
    let cube = Arc::new(Mesh::cuboid(0.05, 0.05, 0.05).unwrap());
    let meshes: MeshLibrary = [(1u32, cube.clone())].into();
    let points: ModelPoints = [(1u32, Arc::new(cube.vertices.clone()))].into();
    let (sink, storage) = RerunSink::memory(Arc::new(meshes), points).unwrap();
    p.add_sink(Box::new(sink));
    p.run().into_result().unwrap();
    let counts = entity_counts(&storage).unwrap();
    let n = |e: &str| {
        counts
            .get(e)
            .copied()
            .unwrap_or_else(|| panic!("no entity {e} in {counts:?}"))
    };
    for e in [
        "/world/camera/rgb",
        "/world/camera/depth",
        "/world/objects/1/gt",
        "/world/objects/1/rfpf",
        "/world/particles/rfpf/1",
        "/metrics/rfpf/latency_ms",
        "/metrics/rfpf/1/spread_mm",
        "/metrics/rfpf/1/add_mm",
        "/metrics/rfpf/1/quality",
        "/metrics/rfpf/1/visible",
        "/metrics/rfpf/1/held",
        "/metrics/rfpf/1/lost",
    ] {
        assert_eq!(n(e), 4, "{e}: {counts:?}");
    }
    assert_eq!(
        n("/world/camera"),
        1,
        "pinhole logged once for a fixed camera"
    );
    assert_eq!(n("/world/objects/1/gt/mesh"), 1);
    assert_eq!(n("/world/objects/1/rfpf/mesh"), 1);
}
