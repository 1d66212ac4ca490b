//! CDR payloads of every ROS 2 message hdpf reads or writes; a message that decodes must encode
//! back to bytes that decode to the same message (compared as bytes: NaN fields are not `==`).
#![no_main]
use hdpf::domains::recording::ros_msgs::{
    BopFrame, CameraInfo, CompressedImage, Image, PoseWithCovarianceStamped, RosMessage,
};
use libfuzzer_sys::fuzz_target;

fn roundtrip<M: RosMessage>(data: &[u8]) {
    if let Ok(m) = M::from_cdr(data) {
        let bytes = m.to_cdr();
        let again = M::from_cdr(&bytes).expect("our own encoding decodes");
        assert_eq!(again.to_cdr(), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip::<Image>(data);
    roundtrip::<CompressedImage>(data);
    roundtrip::<CameraInfo>(data);
    roundtrip::<PoseWithCovarianceStamped>(data);
    roundtrip::<BopFrame>(data);
});
