#include "node/server/json_events.h"

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter {
namespace {

// A recursive-descent reader over the body; every method returns false on bad input and
// leaves a message in error_. Recursion depth is bounded by kJsonDepthMax.
class Reader {
 public:
  explicit Reader(absl::string_view text) : text_(text) {}

  bool ParseRequest(JsonEventsRequest* request);
  const std::string& error() const { return error_; }

 private:
  bool Fail(const std::string& message) {
    if (error_.empty()) {
      error_ = absl::StrCat(message, " at byte ", position_);
    }
    return false;
  }
  void SkipWhitespace() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\t' ||
                                        text_[position_] == '\n' || text_[position_] == '\r')) {
      ++position_;
    }
  }
  bool Consume(char expected) {
    SkipWhitespace();
    if (position_ < text_.size() && text_[position_] == expected) {
      ++position_;
      return true;
    }
    return false;
  }
  bool Peek(char expected) {
    SkipWhitespace();
    return position_ < text_.size() && text_[position_] == expected;
  }
  bool ParseString(std::string* out);
  bool ParseUnsigned(uint64_t* out);
  bool SkipValue(int depth);
  bool SkipNumber();
  bool SkipLiteral(absl::string_view literal);
  bool ParseEvent(JsonEvent* event, bool* sync);

  absl::string_view text_;
  size_t position_ = 0;
  std::string error_;
};

bool Reader::ParseString(std::string* out) {
  if (!Consume('"')) {
    return Fail("expected a string");
  }
  out->clear();
  while (position_ < text_.size()) {
    const char c = text_[position_++];
    if (c == '"') {
      return true;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      return Fail("control character in string");
    }
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (position_ >= text_.size()) {
      break;
    }
    const char escape = text_[position_++];
    switch (escape) {
      case '"':
        out->push_back('"');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case '/':
        out->push_back('/');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        if (position_ + 4 > text_.size()) {
          return Fail("short \\u escape");
        }
        uint32_t code = 0;
        for (int i = 0; i < 4; ++i) {
          const char h = text_[position_++];
          const int digit = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
          if (digit < 0) {
            return Fail("bad \\u escape");
          }
          code = code * 16 + static_cast<uint32_t>(digit);
        }
        if (code >= 0xD800 && code <= 0xDFFF) {
          return Fail("surrogate \\u escapes are not supported");
        }
        if (code < 0x80) {
          out->push_back(static_cast<char>(code));
        } else if (code < 0x800) {
          out->push_back(static_cast<char>(0xC0 | (code >> 6)));
          out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
        } else {
          out->push_back(static_cast<char>(0xE0 | (code >> 12)));
          out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
        }
        break;
      }
      default:
        return Fail("bad escape");
    }
  }
  return Fail("unterminated string");
}

bool Reader::ParseUnsigned(uint64_t* out) {
  SkipWhitespace();
  const size_t start = position_;
  uint64_t value = 0;
  while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(text_[position_] - '0');
    if (value > (UINT64_MAX - digit) / 10) {
      return Fail("integer out of range");
    }
    value = value * 10 + digit;
    ++position_;
  }
  if (position_ == start) {
    return Fail("expected a non-negative integer");
  }
  if (text_[start] == '0' && position_ - start > 1) {
    return Fail("leading zero");
  }
  if (position_ < text_.size() &&
      (text_[position_] == '.' || text_[position_] == 'e' || text_[position_] == 'E')) {
    return Fail("not an integer");
  }
  *out = value;
  return true;
}

bool Reader::SkipNumber() {
  SkipWhitespace();
  const size_t start = position_;
  if (position_ < text_.size() && text_[position_] == '-') {
    ++position_;
  }
  auto digits = [&] {
    const size_t first = position_;
    while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
      ++position_;
    }
    return position_ > first;
  };
  if (!digits()) {
    return Fail("bad number");
  }
  if (position_ < text_.size() && text_[position_] == '.') {
    ++position_;
    if (!digits()) {
      return Fail("bad number");
    }
  }
  if (position_ < text_.size() && (text_[position_] == 'e' || text_[position_] == 'E')) {
    ++position_;
    if (position_ < text_.size() && (text_[position_] == '+' || text_[position_] == '-')) {
      ++position_;
    }
    if (!digits()) {
      return Fail("bad number");
    }
  }
  return position_ > start;
}

bool Reader::SkipLiteral(absl::string_view literal) {
  if (text_.substr(position_, literal.size()) != literal) {
    return Fail("bad literal");
  }
  position_ += literal.size();
  return true;
}

bool Reader::SkipValue(int depth) {  // NOLINT(misc-no-recursion): depth-bounded.
  if (depth > kJsonDepthMax) {
    return Fail("nesting too deep");
  }
  SkipWhitespace();
  if (position_ >= text_.size()) {
    return Fail("expected a value");
  }
  std::string ignored;
  switch (text_[position_]) {
    case '"':
      return ParseString(&ignored);
    case 't':
      return SkipLiteral("true");
    case 'f':
      return SkipLiteral("false");
    case 'n':
      return SkipLiteral("null");
    case '[':
    case '{': {
      const bool is_object = text_[position_] == '{';
      const char close = is_object ? '}' : ']';
      ++position_;
      if (Consume(close)) {
        return true;
      }
      do {
        if (is_object && (!ParseString(&ignored) || !Consume(':'))) {
          return Fail("bad object member");
        }
        if (!SkipValue(depth + 1)) {
          return false;
        }
      } while (Consume(','));
      return Consume(close) || Fail("expected , or a closing bracket");
    }
    default:
      return SkipNumber();
  }
}

bool Reader::ParseEvent(JsonEvent* event, bool* sync) {
  if (!Consume('{')) {
    return Fail("array element is not an object");
  }
  bool has_account = false;
  bool has_code = false;
  bool has_value = false;
  bool has_mode = false;
  if (!Consume('}')) {
    do {
      std::string key;
      if (!ParseString(&key) || !Consume(':')) {
        return Fail("bad object member");
      }
      bool* seen = key == "account_id"      ? &has_account
                   : key == "metric_code"   ? &has_code
                   : key == "value"         ? &has_value
                   : key == "delivery_mode" ? &has_mode
                                            : nullptr;
      if (seen != nullptr && *seen) {
        return Fail(absl::StrCat("duplicate key ", key));
      }
      if (seen != nullptr) {
        *seen = true;
      }
      bool ok = true;
      if (key == "account_id") {
        ok = ParseUnsigned(&event->account_id);
      } else if (key == "value") {
        ok = ParseUnsigned(&event->value);
      } else if (key == "metric_code" || key == "delivery_mode") {
        std::string text;
        ok = ParseString(&text);
        if (key == "metric_code") {
          event->metric_code = text.substr(0, kJsonMetricCodeBytesMax);
        } else if (text == "sync") {
          *sync = true;
        }
      } else {
        ok = SkipValue(2);
      }
      if (!ok) {
        return false;
      }
    } while (Consume(','));
    if (!Consume('}')) {
      return Fail("expected , or }");
    }
  }
  if (!has_account || !has_code || !has_value) {
    return Fail("missing account_id, metric_code or value");
  }
  return true;
}

bool Reader::ParseRequest(JsonEventsRequest* request) {
  if (!Consume('[')) {
    return Fail("body is not a JSON array");
  }
  if (!Consume(']')) {
    do {
      if (request->events.size() == kJsonEventsMax) {
        return Fail("more than 1024 events");
      }
      request->events.emplace_back();
      if (!ParseEvent(&request->events.back(), &request->sync)) {
        return false;
      }
    } while (Consume(','));
    if (!Consume(']')) {
      return Fail("expected , or ]");
    }
  }
  SkipWhitespace();
  if (position_ != text_.size()) {
    return Fail("trailing bytes after the array");
  }
  return true;
}

}  // namespace

absl::StatusOr<JsonEventsRequest> ParseJsonEvents(absl::string_view body) {
  JsonEventsRequest request;
  Reader reader(body);
  if (!reader.ParseRequest(&request)) {
    UM_CHECK(!reader.error().empty());
    return absl::InvalidArgumentError(reader.error());
  }
  return request;
}

}  // namespace unimeter
