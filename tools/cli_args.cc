#include "tools/cli_args.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include "absl/strings/str_cat.h"

namespace unimeter::tools {

namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSecondsPerDay = 86'400;

std::string Str(std::string_view view) { return std::string(view); }

absl::Status Invalid(std::string_view what, std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", Str(what), " '", Str(text), "': ", Str(why)));
}

// Reads exactly `digits` decimal digits at `*at`.
bool ReadDigits(std::string_view text, size_t* at, size_t digits, int64_t* value) {
  if (*at + digits > text.size()) {
    return false;
  }
  int64_t result = 0;
  for (size_t i = 0; i < digits; ++i) {
    const char c = text[*at + i];
    if (c < '0' || c > '9') {
      return false;
    }
    result = result * 10 + (c - '0');
  }
  *at += digits;
  *value = result;
  return true;
}

bool Expect(std::string_view text, size_t* at, char c) {
  if (*at < text.size() &&
      (text[*at] == c || (c == 'T' && text[*at] == 't') || (c == 'T' && text[*at] == ' '))) {
    ++*at;
    return true;
  }
  return false;
}

int64_t DaysInMonth(int64_t year, int64_t month) {
  static constexpr int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// ---- A minimal JSON reader for one event object ------------------------------------------------

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  void SkipSpace() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) {
      ++at_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool AtEnd() {
    SkipSpace();
    return at_ == text_.size();
  }
  char Peek() {
    SkipSpace();
    return at_ < text_.size() ? text_[at_] : '\0';
  }

  absl::StatusOr<std::string> String() {
    if (!Consume('"')) {
      return Error("expected a string");
    }
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      char c = text_[at_++];
      if (c == '\\') {
        if (at_ >= text_.size()) {
          return Error("unterminated escape");
        }
        c = text_[at_++];
        switch (c) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'u': {
            int64_t code = 0;
            for (int i = 0; i < 4; ++i) {
              if (at_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[at_]))) {
                return Error("bad \\u escape");
              }
              const char h = static_cast<char>(std::tolower(text_[at_++]));
              code = code * 16 + (h <= '9' ? h - '0' : h - 'a' + 10);
            }
            AppendUtf8(code, &out);
            break;
          }
          default:
            out += c;
            break;  // \" \\ \/
        }
      } else {
        out += c;
      }
    }
    if (!Consume('"')) {
      return Error("unterminated string");
    }
    return out;
  }

  // An integer token (no fraction or exponent), as text.
  absl::StatusOr<std::string> Integer() {
    SkipSpace();
    const size_t begin = at_;
    if (at_ < text_.size() && text_[at_] == '-') {
      ++at_;
    }
    while (at_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[at_]))) {
      ++at_;
    }
    if (at_ == begin ||
        (at_ < text_.size() && (text_[at_] == '.' || text_[at_] == 'e' || text_[at_] == 'E'))) {
      return Error("expected an integer");
    }
    return Str(text_.substr(begin, at_ - begin));
  }

  absl::Status Error(std::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(Str(why), " at column ", at_ + 1));
  }

 private:
  static void AppendUtf8(int64_t code, std::string* out) {
    if (code < 0x80) {
      *out += static_cast<char>(code);
    } else if (code < 0x800) {
      *out += static_cast<char>(0xC0 | (code >> 6));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      *out += static_cast<char>(0xE0 | (code >> 12));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  std::string_view text_;
  size_t at_ = 0;
};

absl::Status ParseProperties(JsonReader& reader, client::Event* event) {
  if (!reader.Consume('{')) {
    return reader.Error("properties must be an object");
  }
  if (reader.Consume('}')) {
    return absl::OkStatus();
  }
  do {
    absl::StatusOr<std::string> key = reader.String();
    if (!key.ok()) {
      return key.status();
    }
    if (!reader.Consume(':')) {
      return reader.Error("expected ':'");
    }
    absl::StatusOr<std::string> value =
        reader.Peek() == '"' ? reader.String() : reader.Integer();  // Numbers kept as text.
    if (!value.ok()) {
      return reader.Error("property values must be strings or integers");
    }
    event->properties.push_back({.key = *std::move(key), .value = *std::move(value)});
  } while (reader.Consume(','));
  if (!reader.Consume('}')) {
    return reader.Error("expected '}' after properties");
  }
  return absl::OkStatus();
}

absl::Status ParseEventField(JsonReader& reader, const std::string& key, client::Event* event,
                             bool* has_account, bool* has_code, bool* has_value) {
  if (key == "account_id" || key == "value") {
    absl::StatusOr<std::string> text = reader.Integer();
    absl::StatusOr<uint64_t> number =
        text.ok() ? ParseU64(*text, key) : absl::StatusOr<uint64_t>(text.status());
    if (!number.ok()) {
      return number.status();
    }
    (key == "value" ? event->value : event->account_id) = *number;
    (key == "value" ? *has_value : *has_account) = true;
    return absl::OkStatus();
  }
  if (key == "metric_code") {
    absl::StatusOr<std::string> code = reader.String();
    if (!code.ok()) {
      return code.status();
    }
    event->metric_code = *std::move(code);
    *has_code = true;
    return absl::OkStatus();
  }
  if (key == "timestamp") {
    absl::StatusOr<std::string> text = reader.Peek() == '"' ? reader.String() : reader.Integer();
    absl::StatusOr<int64_t> time =
        text.ok() ? ParseTimeNs(*text) : absl::StatusOr<int64_t>(text.status());
    if (!time.ok()) {
      return time.status();
    }
    event->timestamp_ns = *time;
    return absl::OkStatus();
  }
  if (key == "operation") {
    absl::StatusOr<std::string> op = reader.String();
    if (!op.ok()) {
      return op.status();
    }
    if (*op == "add") {
      event->operation = client::OperationType::kAdd;
    } else if (*op == "remove") {
      event->operation = client::OperationType::kRemove;
    } else if (*op == "none") {
      event->operation = client::OperationType::kNone;
    } else {
      return reader.Error("operation must be add, remove or none");
    }
    return absl::OkStatus();
  }
  if (key == "properties") {
    return ParseProperties(reader, event);
  }
  return reader.Error(absl::StrCat("unknown key \"", key, "\""));
}

}  // namespace

// ---- ParsedArgs ------------------------------------------------------------------------------

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto range = flags.equal_range(name);
  if (range.first == range.second) {
    return std::nullopt;
  }
  return std::prev(range.second)->second;
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  std::vector<std::string> values;
  for (auto [it, end] = flags.equal_range(name); it != end; ++it) {
    values.push_back(it->second);
  }
  return values;
}

absl::Status ParsedArgs::CheckAllowed(const std::vector<std::string>& allowed) const {
  for (const auto& [name, value] : flags) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  return absl::OkStatus();
}

ParsedArgs ParseArgs(const std::vector<std::string>& args) {
  ParsedArgs parsed;
  bool flags_done = false;
  for (const std::string& arg : args) {
    if (flags_done || arg.size() < 2 || arg[0] != '-' ||
        (arg[1] != '-' && arg != "-h")) {  // "-5" etc. stay positional.
      parsed.positional.push_back(arg);
    } else if (arg == "--") {
      flags_done = true;
    } else if (arg == "-h") {
      parsed.flags.emplace("help", "true");
    } else {
      const size_t equals = arg.find('=');
      if (equals == std::string::npos) {
        parsed.flags.emplace(arg.substr(2), "true");
      } else {
        parsed.flags.emplace(arg.substr(2, equals - 2), arg.substr(equals + 1));
      }
    }
  }
  return parsed;
}

absl::StatusOr<uint64_t> ParseU64(std::string_view text, std::string_view what) {
  if (text.empty() || text.size() > 20) {
    return Invalid(what, text, "not an unsigned integer");
  }
  unsigned __int128 value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return Invalid(what, text, "not an unsigned integer");
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > std::numeric_limits<uint64_t>::max()) {
    return Invalid(what, text, "out of range");
  }
  return static_cast<uint64_t>(value);
}

absl::StatusOr<int64_t> ParseI64(std::string_view text, std::string_view what) {
  const bool negative = !text.empty() && text[0] == '-';
  absl::StatusOr<uint64_t> magnitude = ParseU64(negative ? text.substr(1) : text, what);
  if (!magnitude.ok()) {
    return Invalid(what, text, "not an integer");
  }
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (*magnitude > limit) {
    return Invalid(what, text, "out of range");
  }
  return negative ? static_cast<int64_t>(0 - *magnitude) : static_cast<int64_t>(*magnitude);
}

absl::StatusOr<int64_t> IntFlag(const ParsedArgs& args, const std::string& name, int64_t fallback,
                                int64_t minimum, int64_t maximum) {
  std::optional<std::string> text = args.Get(name);
  if (!text.has_value()) {
    return fallback;
  }
  absl::StatusOr<int64_t> value = ParseI64(*text, "--" + name);
  if (!value.ok()) {
    return value.status();
  }
  if (*value < minimum || *value > maximum) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be in ", minimum, "..", maximum));
  }
  return *value;
}

// ---- Time ------------------------------------------------------------------------------------

int64_t CivilToNs(int64_t year, int64_t month, int64_t day) {
  // Days from 1970-01-01 (the well-known days-from-civil algorithm, era of 400 years).
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  const int64_t days = era * 146'097 + day_of_era - 719'468;
  return days * kSecondsPerDay * kNsPerSecond;
}

absl::StatusOr<int64_t> ParseTimeNs(std::string_view text) {
  const std::string_view digits = !text.empty() && text[0] == '-' ? text.substr(1) : text;
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos) {
    return ParseI64(text, "time");
  }
  size_t at = 0;
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ReadDigits(text, &at, 4, &year) || !Expect(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &month) || !Expect(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &day)) {
    return Invalid("time", text, "expected ns or YYYY-MM-DDTHH:MM:SSZ");
  }
  const bool has_time = at < text.size();
  if (has_time) {
    if (!Expect(text, &at, 'T') || !ReadDigits(text, &at, 2, &hour) || !Expect(text, &at, ':') ||
        !ReadDigits(text, &at, 2, &minute) || !Expect(text, &at, ':') ||
        !ReadDigits(text, &at, 2, &second)) {
      return Invalid("time", text, "expected ns or YYYY-MM-DDTHH:MM:SSZ");
    }
  }
  int64_t fraction_ns = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    int64_t scale = 100'000'000;
    const size_t begin = at;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
      fraction_ns += scale * (text[at] - '0');
      scale /= 10;
      ++at;
    }
    if (at == begin || at - begin > 9) {
      return Invalid("time", text, "fraction must have 1 to 9 digits");
    }
  }
  int64_t offset_s = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const int64_t sign = text[at] == '-' ? -1 : 1;
    ++at;
    int64_t offset_h = 0, offset_m = 0;
    if (!ReadDigits(text, &at, 2, &offset_h) || !Expect(text, &at, ':') ||
        !ReadDigits(text, &at, 2, &offset_m)) {
      return Invalid("time", text, "bad UTC offset");
    }
    offset_s = sign * (offset_h * 3600 + offset_m * 60);
  } else if (has_time) {
    return Invalid("time", text, "a time of day needs 'Z' or an offset (UTC)");
  }
  if (at != text.size()) {
    return Invalid("time", text, "trailing characters");
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return Invalid("time", text, "field out of range");
  }
  return CivilToNs(year, month, day) +
         ((hour * 60 + minute) * 60 + second - offset_s) * kNsPerSecond + fraction_ns;
}

std::string FormatTimeNs(int64_t time_ns) {
  int64_t seconds = time_ns / kNsPerSecond;
  int64_t nanos = time_ns % kNsPerSecond;
  if (nanos < 0) {
    nanos += kNsPerSecond;
    --seconds;
  }
  int64_t days = seconds / kSecondsPerDay;
  int64_t second_of_day = seconds % kSecondsPerDay;
  if (second_of_day < 0) {
    second_of_day += kSecondsPerDay;
    --days;
  }
  // Civil-from-days (inverse of CivilToNs).
  const int64_t z = days + 719'468;
  const int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const int64_t day_of_era = z - era * 146'097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t mp = (5 * day_of_year + 2) / 153;
  const int64_t day = day_of_year - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  char buffer[64];
  const int length = std::snprintf(
      buffer, sizeof(buffer), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
      static_cast<long long>(year), static_cast<long long>(month), static_cast<long long>(day),
      static_cast<long long>(second_of_day / 3600), static_cast<long long>(second_of_day / 60 % 60),
      static_cast<long long>(second_of_day % 60));
  std::string out(buffer, static_cast<size_t>(length));
  if (nanos != 0) {
    std::snprintf(buffer, sizeof(buffer), ".%09lld", static_cast<long long>(nanos));
    out += buffer;
  }
  return out + "Z";
}

std::pair<int64_t, int64_t> CalendarMonthRange(int64_t now_ns) {
  const std::string now = FormatTimeNs(now_ns);  // YYYY-MM-...
  const int64_t year = std::stoll(now.substr(0, 4));
  const int64_t month = std::stoll(now.substr(5, 2));
  return {CivilToNs(year, month, 1),
          month == 12 ? CivilToNs(year + 1, 1, 1) : CivilToNs(year, month + 1, 1)};
}

// ---- Metric definition flags ------------------------------------------------------------------

absl::StatusOr<protocol::DimensionSpec> ParseDimension(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return Invalid("--dimension", text, "expected key:v1,v2,...");
  }
  protocol::DimensionSpec dimension{.key = Str(text.substr(0, colon))};
  std::string_view rest = text.substr(colon + 1);
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view value = rest.substr(0, comma);
    if (value.empty()) {
      return Invalid("--dimension", text, "empty value");
    }
    dimension.values.push_back(Str(value));
    if (comma == std::string_view::npos) {
      break;
    }
    rest = rest.substr(comma + 1);
  }
  if (dimension.values.size() > protocol::kValuesPerDimensionMax) {
    return Invalid("--dimension", text, "at most 8 values");
  }
  return dimension;
}

absl::StatusOr<protocol::ThresholdSpec> ParseThreshold(std::string_view text) {
  const size_t first = text.find(':');
  if (first == std::string_view::npos || first == 0) {
    return Invalid("--threshold", text, "expected code:value[:recurring]");
  }
  std::string_view value_text = text.substr(first + 1);
  bool recurring = false;
  const size_t second = value_text.find(':');
  if (second != std::string_view::npos) {
    if (value_text.substr(second + 1) != "recurring") {
      return Invalid("--threshold", text, "the third part can only be 'recurring'");
    }
    recurring = true;
    value_text = value_text.substr(0, second);
  }
  absl::StatusOr<uint64_t> value = ParseU64(value_text, "threshold value");
  if (!value.ok()) {
    return value.status();
  }
  return protocol::ThresholdSpec{
      .code = Str(text.substr(0, first)), .value = *value, .recurring = recurring};
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view text,
                                                                  std::string_view what) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    return Invalid(what, text, "expected key=value");
  }
  return std::make_pair(Str(text.substr(0, equals)), Str(text.substr(equals + 1)));
}

absl::StatusOr<uint8_t> ParseAggType(std::string_view text) {
  static constexpr std::string_view kNames[] = {"count", "sum", "max", "latest", "count_unique"};
  for (uint8_t i = 0; i < 5; ++i) {
    if (text == kNames[i]) {
      return i;
    }
  }
  return Invalid("--agg", text, "expected sum, count, max, latest or count_unique");
}

absl::StatusOr<uint8_t> ParsePeriodType(std::string_view text) {
  if (text == "fixed") {
    return protocol::kPeriodTypeFixed;
  }
  if (text == "calendar") {
    return protocol::kPeriodTypeCalendar;
  }
  if (text == "day") {
    return protocol::kPeriodTypeDay;
  }
  return Invalid("--period", text, "expected fixed, calendar or day");
}

std::string AggTypeName(uint8_t agg_type) {
  static constexpr std::string_view kNames[] = {"count", "sum", "max", "latest", "count_unique"};
  return agg_type < 5 ? Str(kNames[agg_type]) : absl::StrCat("agg_", agg_type);
}

std::string PeriodTypeName(uint8_t period_type) {
  switch (period_type) {
    case protocol::kPeriodTypeFixed:
      return "fixed";
    case protocol::kPeriodTypeCalendar:
      return "calendar";
    case protocol::kPeriodTypeDay:
      return "day";
    default:
      return absl::StrCat("period_", period_type, " (fixed)");
  }
}

// ---- JSON lines -------------------------------------------------------------------------------

absl::StatusOr<client::Event> ParseEventJson(std::string_view line) {
  JsonReader reader(line);
  client::Event event;
  bool has_account = false, has_code = false, has_value = false;
  if (!reader.Consume('{')) {
    return reader.Error("expected a JSON object");
  }
  if (!reader.Consume('}')) {
    do {
      absl::StatusOr<std::string> key = reader.String();
      if (!key.ok()) {
        return key.status();
      }
      if (!reader.Consume(':')) {
        return reader.Error("expected ':'");
      }
      absl::Status field =
          ParseEventField(reader, *key, &event, &has_account, &has_code, &has_value);
      if (!field.ok()) {
        return field;
      }
    } while (reader.Consume(','));
    if (!reader.Consume('}')) {
      return reader.Error("expected '}'");
    }
  }
  if (!reader.AtEnd()) {
    return reader.Error("trailing characters");
  }
  if (!has_account || !has_code || !has_value) {
    return absl::InvalidArgumentError("account_id, metric_code and value are required");
  }
  return event;
}

// ---- Output -----------------------------------------------------------------------------------

std::string U128ToString(unsigned __int128 value) {
  if (value == 0) {
    return "0";
  }
  std::string digits;
  while (value != 0) {
    digits += static_cast<char>('0' + static_cast<int>(value % 10));
    value /= 10;
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) {
    measure(row);
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) {
    emit(row);
  }
  return out;
}

}  // namespace unimeter::tools
