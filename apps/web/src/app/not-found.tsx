import { MapPinOff } from "lucide-react";
import Link from "next/link";
import { buttonClass } from "@/components/ui/button";
import { EmptyState } from "@/components/ui/empty-state";

export default function NotFound() {
  return (
    <main className="flex min-h-dvh items-center justify-center p-4">
      <EmptyState
        icon={MapPinOff}
        title="Page not found"
        action={
          <Link href="/" className={buttonClass("outline")}>
            Back to the fleet
          </Link>
        }
      >
        There is nothing at this address.
      </EmptyState>
    </main>
  );
}
