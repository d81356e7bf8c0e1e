// Placeholder main, replaced by the module's owner.
#include <cstdio>
int main() {
  std::fputs("not built yet\n", stderr);
  return 1;
}
