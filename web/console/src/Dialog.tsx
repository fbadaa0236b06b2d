/** A modal dialog on the native <dialog> element: focus is kept inside, and Esc closes it. */
import { useEffect, useRef, type ReactNode } from 'react';

interface Props {
  title: string;
  onClose: () => void;
  children: ReactNode;
}

export function Dialog({ title, onClose, children }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    dialog.showModal();
    // Esc fires `cancel` on a modal dialog; the parent decides (it unmounts us).
    const cancel = (event: Event) => {
      event.preventDefault();
      onClose();
    };
    dialog.addEventListener('cancel', cancel);
    return () => {
      dialog.removeEventListener('cancel', cancel);
      dialog.close();
    };
  }, [onClose]);
  return (
    <dialog ref={ref} aria-label={title}>
      <h2>{title}</h2>
      {children}
    </dialog>
  );
}
