// hub_frame_fuzzer: the hub's WebSocket frame decoder (src/hub/ws_codec) on arbitrary
// client bytes, fed whole and then split at a point taken from the input. Both runs
// must agree (a frame split across reads decodes the same), every text message must
// be valid UTF-8 within the size limit, and a failure must carry a close code.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "hub/ws_codec.hpp"

namespace {

struct Log : rtcmesh::hub::WsSink {
  std::string events;
  size_t limit = 0;
  bool on_text(std::string_view m) override {
    rtcmesh::fuzz::check(rtcmesh::hub::is_valid_utf8(m), "text message is not UTF-8");
    rtcmesh::fuzz::check(m.size() <= limit, "message over the limit delivered");
    events += "T" + std::to_string(m.size()) + ":" + std::string(m) + ";";
    return true;
  }
  bool on_binary(std::string_view m) override {
    rtcmesh::fuzz::check(m.size() <= limit, "message over the limit delivered");
    events += "B" + std::string(m) + ";";
    return true;
  }
  bool on_ping(std::string_view p) override {
    rtcmesh::fuzz::check(p.size() <= 125, "ping over 125 bytes");
    events += "P" + std::string(p) + ";";
    return true;
  }
  bool on_pong(std::string_view p) override {
    events += "O" + std::string(p) + ";";
    return true;
  }
  bool on_close(uint16_t code, std::string_view reason) override {
    events += "C" + std::to_string(code) + std::string(reason) + ";";
    return true;
  }
};

std::string run(const uint8_t* data, size_t size, size_t cut, size_t limit) {
  using rtcmesh::hub::WsDecoder;
  std::vector<uint8_t> copy(data, data + size);
  WsDecoder decoder(limit);
  Log log;
  log.limit = limit;
  auto status = decoder.feed(copy.data(), cut, log);
  if (status == WsDecoder::Status::Ok) status = decoder.feed(copy.data() + cut, size - cut, log);
  if (status == WsDecoder::Status::Failed) {
    const uint16_t code = decoder.error().close_code;
    rtcmesh::fuzz::check(code == 1002 || code == 1007 || code == 1009,
                         "failure without a close code");
    log.events += "F" + std::to_string(code);
  }
  return log.events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t limit = 64 + data[0] * 4;
  const size_t cut = size > 1 ? data[1] % size : 0;
  const std::string whole = run(data + 1, size - 1, 0, limit);
  const std::string split = run(data + 1, size - 1, cut == 0 ? 0 : cut - 1, limit);
  rtcmesh::fuzz::check(whole == split, "split feed decodes differently",
                       whole + "\n----\n" + split);
  std::string out;
  rtcmesh::hub::append_text_frame(out, std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
