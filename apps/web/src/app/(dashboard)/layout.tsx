import type { ReactNode } from "react";
import { AppShell } from "@/components/shell/app-shell";

/** Every page behind the sign-in (the server redirects to /login without a session). */
export default function DashboardLayout({ children }: { children: ReactNode }) {
  return <AppShell>{children}</AppShell>;
}
