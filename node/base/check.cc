#include "node/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace unimeter {
namespace {
CheckContextHook g_check_context_hook = nullptr;  // Set once at start-up.
}  // namespace

void SetCheckContextHook(CheckContextHook hook) { g_check_context_hook = hook; }

void CheckFailed(const char* file, int line, const char* expression, const std::string& values) {
  std::string context;
  if (g_check_context_hook != nullptr) {
    context = g_check_context_hook();
  }
  std::fprintf(stderr, "UM_CHECK failed at %s:%d: %s%s%s%s%s%s\n", file, line, expression,
               values.empty() ? "" : " (", values.c_str(), values.empty() ? "" : ")",
               context.empty() ? "" : " ", context.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace unimeter
