ALTER TABLE `payments` ADD `fulfilment_due_at` integer;--> statement-breakpoint
ALTER TABLE `payments` ADD `registered_at` integer;--> statement-breakpoint
ALTER TABLE `payments` ADD `released_at` integer;--> statement-breakpoint
ALTER TABLE `payments` ADD `reversed_after_release` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `state_changes` ADD `kind` text DEFAULT 'status' NOT NULL;