#include "hub/ws_codec.hpp"

#include <algorithm>
#include <cstring>

namespace rtcmesh::hub {
namespace {

struct Header {
  bool fin = false;
  uint8_t rsv = 0;
  uint8_t opcode = 0;
  bool masked = false;
  uint64_t length = 0;
  size_t header_length = 0;
  uint8_t mask[4] = {0, 0, 0, 0};
};

// Returns the header length once all header bytes are present, else 0.
size_t parse_header(const uint8_t* p, size_t n, Header& h) {
  if (n < 2) return 0;
  h.fin = (p[0] & 0x80) != 0;
  h.rsv = p[0] & 0x70;
  h.opcode = p[0] & 0x0F;
  h.masked = (p[1] & 0x80) != 0;
  uint64_t length = p[1] & 0x7F;
  size_t pos = 2;
  if (length == 126) {
    if (n < 4) return 0;
    length = (uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (length == 127) {
    if (n < 10) return 0;
    length = 0;
    for (size_t i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
    pos = 10;
  }
  h.length = length;
  if (h.masked) {
    if (n < pos + 4) return 0;
    std::memcpy(h.mask, p + pos, 4);
    pos += 4;
  }
  h.header_length = pos;
  return pos;
}

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

void unmask(uint8_t* payload, size_t length, const uint8_t mask[4]) {
  // Word at a time: the payload of a whole frame is the bulk of the hub's input.
  uint32_t m32;
  std::memcpy(&m32, mask, 4);
  const uint64_t m64 = (uint64_t{m32} << 32) | m32;
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t w;
    std::memcpy(&w, payload + i, 8);
    w ^= m64;
    std::memcpy(payload + i, &w, 8);
  }
  for (; i < length; ++i) payload[i] ^= mask[i & 3];
}

void append_header(std::string& out, WsOpcode opcode, size_t length) {
  char h[10];
  size_t n = 2;
  h[0] = static_cast<char>(0x80 | static_cast<uint8_t>(opcode));
  if (length < 126) {
    h[1] = static_cast<char>(length);
  } else if (length <= 0xFFFF) {
    h[1] = 126;
    h[2] = static_cast<char>(length >> 8);
    h[3] = static_cast<char>(length & 0xFF);
    n = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; ++i)
      h[2 + i] = static_cast<char>((uint64_t{length} >> (56 - 8 * i)) & 0xFF);
    n = 10;
  }
  out.append(h, n);
}

}  // namespace

bool WsDecoder::fail(uint16_t code, const char* reason) {
  failed_ = true;
  error_ = WsError{code, reason};
  return false;
}

bool WsDecoder::deliver(uint8_t opcode, bool fin, std::string_view payload, WsSink& sink,
                        bool& stop) {
  bool reassembled = false;
  switch (static_cast<WsOpcode>(opcode)) {
    case WsOpcode::Ping:
      stop = !sink.on_ping(payload);
      return true;
    case WsOpcode::Pong:
      stop = !sink.on_pong(payload);
      return true;
    case WsOpcode::Close: {
      if (payload.empty()) {
        stop = !sink.on_close(1005, {});
        return true;
      }
      if (payload.size() == 1) return fail(close_code::kProtocolError, "bad_close_frame");
      const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
      const uint16_t code = static_cast<uint16_t>((p[0] << 8) | p[1]);
      if (!valid_close_code(code)) return fail(close_code::kProtocolError, "bad_close_code");
      const std::string_view reason = payload.substr(2);
      if (!is_valid_utf8(reason)) return fail(close_code::kInvalidPayload, "invalid_utf8");
      stop = !sink.on_close(code, reason);
      return true;
    }
    case WsOpcode::Text:
    case WsOpcode::Binary:
      if (!fin) {
        message_opcode_ = opcode;
        message_.assign(payload);
        return true;
      }
      break;
    case WsOpcode::Continuation:
      message_.append(payload);
      if (!fin) return true;
      opcode = message_opcode_;
      message_opcode_ = 0;
      payload = message_;
      reassembled = true;
      break;
  }
  bool ok = true;
  if (opcode == static_cast<uint8_t>(WsOpcode::Text)) {
    if (!is_valid_utf8(payload)) {
      ok = fail(close_code::kInvalidPayload, "invalid_utf8");
    } else {
      stop = !sink.on_text(payload);
    }
  } else {
    stop = !sink.on_binary(payload);
  }
  if (reassembled) std::string().swap(message_);
  return ok;
}

bool WsDecoder::validate(const void* header) {
  const Header& h = *static_cast<const Header*>(header);
  if (h.rsv != 0) return fail(close_code::kProtocolError, "reserved_bits");
  if (!h.masked) return fail(close_code::kProtocolError, "unmasked_frame");
  switch (h.opcode) {
    case 0x0:
      if (message_opcode_ == 0) return fail(close_code::kProtocolError, "bad_continuation");
      if (h.length > max_message_ || message_.size() + h.length > max_message_) {
        return fail(close_code::kTooBig, "frame_too_large");
      }
      return true;
    case 0x1:
    case 0x2:
      if (message_opcode_ != 0) return fail(close_code::kProtocolError, "bad_continuation");
      if (h.length > max_message_) return fail(close_code::kTooBig, "frame_too_large");
      return true;
    case 0x8:
    case 0x9:
    case 0xA:
      if (!h.fin || h.length > 125) return fail(close_code::kProtocolError, "bad_control_frame");
      return true;
    default:
      return fail(close_code::kProtocolError, "bad_opcode");
  }
}

size_t WsDecoder::decode_one(uint8_t* data, size_t size, WsSink& sink, bool& stop) {
  Header h;
  const size_t header_length = parse_header(data, size, h);
  if (header_length == 0) return 0;
  // Checked before the payload is complete, so an oversize or bogus frame is refused
  // without buffering it.
  if (!validate(&h)) return 0;
  if (size - header_length < h.length) return 0;
  const size_t length = static_cast<size_t>(h.length);
  uint8_t* payload = data + header_length;
  unmask(payload, length, h.mask);
  if (!deliver(h.opcode, h.fin, std::string_view(reinterpret_cast<const char*>(payload), length),
               sink, stop)) {
    return 0;
  }
  return header_length + length;
}

WsDecoder::Status WsDecoder::feed(uint8_t* data, size_t size, WsSink& sink) {
  if (failed_) return Status::Failed;
  bool stop = false;
  // Finish a frame that an earlier read left incomplete, taking only its bytes.
  while (!partial_.empty()) {
    Header h;
    const size_t header_length =
        parse_header(reinterpret_cast<const uint8_t*>(partial_.data()), partial_.size(), h);
    size_t want = 1;  // header bytes come one at a time (at most 14)
    if (header_length != 0) {
      if (!validate(&h)) return Status::Failed;
      want = header_length + static_cast<size_t>(h.length) - partial_.size();
      if (want == 0) {
        (void)decode_one(reinterpret_cast<uint8_t*>(partial_.data()), partial_.size(), sink, stop);
        std::string().swap(partial_);
        if (failed_) return Status::Failed;
        if (stop) return Status::Stopped;
        break;
      }
    }
    if (size == 0) return Status::Ok;
    const size_t take = std::min(want, size);
    partial_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    size -= take;
  }
  while (size > 0) {
    const size_t used = decode_one(data, size, sink, stop);
    if (failed_) return Status::Failed;
    if (stop) return Status::Stopped;
    if (used == 0) {
      partial_.assign(reinterpret_cast<const char*>(data), size);
      break;
    }
    data += used;
    size -= used;
  }
  return Status::Ok;
}

void append_frame(std::string& out, WsOpcode opcode, std::string_view payload) {
  append_header(out, opcode, payload.size());
  out.append(payload);
}

void append_text_frame(std::string& out, std::string_view a, std::string_view b) {
  append_header(out, WsOpcode::Text, a.size() + b.size());
  out.append(a);
  out.append(b);
}

void append_close_frame(std::string& out, uint16_t code, std::string_view reason) {
  char payload[125];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xFF);
  const size_t n = std::min<size_t>(reason.size(), sizeof(payload) - 2);
  if (n > 0) std::memcpy(payload + 2, reason.data(), n);
  append_frame(out, WsOpcode::Close, std::string_view(payload, n + 2));
}

}  // namespace rtcmesh::hub
