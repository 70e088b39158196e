#include "node/base/flags.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace unimeter {

FlagParser::FlagParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagParser::AddInt(const std::string& name, int64_t* target, const std::string& help,
                        int64_t minimum, int64_t maximum) {
  flags_.push_back({name, Kind::kInt, target, help, minimum, maximum});
}

void FlagParser::AddString(const std::string& name, std::string* target, const std::string& help) {
  flags_.push_back({name, Kind::kString, target, help});
}

void FlagParser::AddBool(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, Kind::kBool, target, help});
}

FlagParser::Flag* FlagParser::Find(const std::string& name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) {
      return &flag;
    }
  }
  return nullptr;
}

bool FlagParser::WasSet(const std::string& name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) {
      return flag.set;
    }
  }
  return false;
}

absl::Status FlagParser::Set(const std::string& name, const std::string& value) {
  Flag* flag = Find(name);
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
  }
  switch (flag->kind) {
    case Kind::kInt: {
      int64_t parsed = 0;
      const char* end = value.data() + value.size();
      auto result = std::from_chars(value.data(), end, parsed);
      if (value.empty() || result.ec != std::errc() || result.ptr != end) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": not an integer"));
      }
      if (parsed < flag->minimum || parsed > flag->maximum) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": out of range [",
                                                       flag->minimum, ", ", flag->maximum, "]"));
      }
      *static_cast<int64_t*>(flag->target) = parsed;
      break;
    }
    case Kind::kString:
      *static_cast<std::string*>(flag->target) = value;
      break;
    case Kind::kBool:
      if (value == "true" || value == "1" || value.empty()) {
        *static_cast<bool*>(flag->target) = true;
      } else if (value == "false" || value == "0") {
        *static_cast<bool*>(flag->target) = false;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": not a boolean"));
      }
      break;
  }
  flag->set = true;
  return absl::OkStatus();
}

absl::Status FlagParser::Parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      help_requested_ = true;
      continue;
    }
    if (argument.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", argument, "' (flags take the form --name=value)"));
    }
    const size_t equals = argument.find('=');
    const std::string name =
        argument.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    Flag* flag = Find(name);
    if (flag == nullptr) {
      warnings_.push_back(absl::StrCat("unknown flag ", argument, " ignored"));
      continue;
    }
    if (equals == std::string::npos && flag->kind != Kind::kBool) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (--", name, "=...)"));
    }
    absl::Status status =
        Set(name, equals == std::string::npos ? std::string() : argument.substr(equals + 1));
    if (!status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

std::string FlagParser::Help() const {
  std::string text = absl::StrCat(summary_, "\n\nFlags (--name=value):\n");
  for (const Flag& flag : flags_) {
    absl::StrAppend(&text, "  --", flag.name, "\n      ", flag.help, "\n");
  }
  return text;
}

namespace {

bool ParseUnsigned(const std::string& text, uint64_t maximum, uint64_t* value) {
  const char* end = text.data() + text.size();
  auto result = std::from_chars(text.data(), end, *value);
  return !text.empty() && result.ec == std::errc() && result.ptr == end && *value <= maximum;
}

}  // namespace

absl::StatusOr<std::vector<PeerAddress>> ParsePeerList(const std::string& text) {
  std::vector<PeerAddress> peers;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) {
      comma = text.size();
    }
    const std::string entry = text.substr(start, comma - start);
    start = comma + 1;
    const size_t first = entry.find(':');
    const size_t last = entry.rfind(':');
    uint64_t id = 0;
    uint64_t port = 0;
    if (first == std::string::npos || first == last ||
        !ParseUnsigned(entry.substr(0, first), 254, &id) ||
        !ParseUnsigned(entry.substr(last + 1), 65535, &port) || port == 0 || last == first + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad peer '", entry, "': expected id:host:port with id 0-254"));
    }
    for (const PeerAddress& peer : peers) {
      if (peer.id == id) {
        return absl::InvalidArgumentError(absl::StrCat("peer id ", id, " appears twice"));
      }
    }
    peers.push_back({static_cast<uint32_t>(id), entry.substr(first + 1, last - first - 1),
                     static_cast<uint16_t>(port)});
  }
  return peers;
}

}  // namespace unimeter
