#include "bus/resp.hpp"

#include <hiredis/hiredis.h>

namespace chat::bus::resp {

void encode(std::string& out, const std::vector<std::string_view>& argv) {
  out += '*';
  out += std::to_string(argv.size());
  out += "\r\n";
  for (const auto& a : argv) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
}

namespace {

void convert(const redisReply& r, Reply& out) {
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.resize(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) {
        if (r.element[i] != nullptr) convert(*r.element[i], out.elements[i]);
      }
      break;
    default:
      out.type = Reply::Type::nil;
      break;
  }
}

}  // namespace

Parser::Parser(std::size_t max_buffered) : reader_(redisReaderCreate()), max_buffered_(max_buffered) {
  if (reader_ == nullptr) error_ = "out of memory";
}

Parser::~Parser() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

bool Parser::feed(const char* data, std::size_t n) {
  if (!error_.empty()) return false;
  if (reader_->len - reader_->pos + n > max_buffered_) {
    error_ = "reply larger than the parser's limit";
    return false;
  }
  if (redisReaderFeed(reader_, data, n) != REDIS_OK) {
    error_ = reader_->errstr[0] != '\0' ? reader_->errstr : "feed failed";
    return false;
  }
  return true;
}

Parser::Status Parser::next(Reply& out) {
  if (!error_.empty()) return Status::error;
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    error_ = reader_->errstr[0] != '\0' ? reader_->errstr : "protocol error";
    return Status::error;
  }
  if (raw == nullptr) return Status::incomplete;
  out = Reply{};
  convert(*static_cast<redisReply*>(raw), out);
  freeReplyObject(raw);
  return Status::reply;
}

}  // namespace chat::bus::resp
