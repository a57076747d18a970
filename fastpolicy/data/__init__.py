"""Data sources: labelled file lists and their checks (:mod:`.files`), Fashion-MNIST
(:mod:`.fashion_mnist`), generated ImageNet-layout photo trees (:mod:`.photo_tree`)."""
