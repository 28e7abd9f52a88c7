"use client";
import { RotateCw } from "lucide-react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";

/** A page that failed to render: say so and offer a retry instead of a blank screen. */
export default function DashboardError({ error, reset }: { error: Error; reset: () => void }) {
  return (
    <div className="mx-auto flex max-w-lg flex-col gap-4 py-10">
      <Alert>This page failed to render: {error.message}</Alert>
      <div>
        <Button variant="outline" onClick={reset}>
          <RotateCw aria-hidden />
          Try again
        </Button>
      </div>
    </div>
  );
}
