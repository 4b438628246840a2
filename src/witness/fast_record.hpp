// A fast reader of a record's top-level fields for the verifier: nlohmann::json
// builds a full DOM (and was ~60% of verification time); this scanner reads the
// canonical shape in one pass and leaves data/metadata as raw byte views. Any
// input it is not sure about (escapes in the fields it reads, duplicate keys,
// odd syntax) makes it return false, and the caller falls back to parse_record().
#pragma once

#include <string_view>

#include "witness/format.hpp"

namespace rtcmesh::witness {

struct RecordView {
  int64_t seq = -1, ts_us = 0, mono_us = 0, v = 0;
  Hash prev{};
  std::string_view event_type, agent, data_raw, metadata_raw;
};

bool scan_record(std::string_view payload, RecordView& out);

}  // namespace rtcmesh::witness
