// witness_log_fuzzer: verify_log on arbitrary bytes (the log reader, frame
// parser, record parser and every damage classifier). It must never crash, and a
// log it calls valid must have consistent counts and a re-verification that
// agrees (verification is a pure function of the bytes).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "witness/fast_record.hpp"
#include "witness/format.hpp"
#include "witness/verifier.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtcmesh;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto report = witness::verify_log(bytes);
  if (report.valid()) {
    fuzz::check(report.events + report.checkpoints == report.records, "counts disagree");
    fuzz::check(report.records > 0, "a valid log has its witness_log_created record");
  }
  auto again = witness::verify_log(bytes);
  fuzz::check(again.damage == report.damage && again.seq == report.seq, "verification not pure");
  (void)report.text();
  // The fast field scanner on the raw bytes as one record: whatever it accepts the
  // full parser must read the same way, when it accepts it too.
  witness::RecordView view;
  if (witness::scan_record(bytes, view)) {
    auto full = witness::parse_record(bytes);
    if (full.ok()) {
      fuzz::check(full->seq == view.seq && full->prev == view.prev &&
                      full->event_type == view.event_type && full->agent == view.agent,
                  "scan_record and parse_record disagree");
    }
  }
  // A checkpoint a peer sends over the data channel (Part 3 witness-checkpoint):
  // parsed and its signature checked; whatever passes must be self-consistent.
  auto cp = witness::parse_peer_checkpoint(bytes);
  if (cp.ok()) {
    fuzz::check(cp->signature_ok(), "accepted a checkpoint whose signature fails");
    fuzz::check(witness::Checkpoint::from_export(cp->export_json().dump()).ok(),
                "export does not re-parse");
  }
  return 0;
}
